"""Pure tensor functions: boxes, anchors, matching, NMS, RoI sampling, targets, pooling,
instance outputs (pasted masks, decoded keypoints).

Nothing here holds state or is a Keras layer; ``keras_det.layers`` wraps these.
"""
