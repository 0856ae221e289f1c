"""Pure tensor functions: boxes, anchors, matching, NMS, RoI sampling, targets.

Nothing here holds state or is a Keras layer; ``keras_det.layers`` wraps these.
"""
