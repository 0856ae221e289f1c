"""Pure tensor functions: boxes, anchors, matching, NMS, RoI sampling, targets, pooling.

Nothing here holds state or is a Keras layer; ``keras_det.layers`` wraps these.
"""
