"""Detection metrics: exact COCO evaluation and Pascal VOC AP."""
