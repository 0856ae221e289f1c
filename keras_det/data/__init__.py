"""tf.data input pipelines following the keras_det data contract."""
