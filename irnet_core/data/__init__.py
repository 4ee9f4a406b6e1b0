"""Dataset layer: one interface over the source formats (:mod:`.dataset`: :func:`~.dataset.open_dataset`),
the formats themselves (:mod:`.voc` PASCAL VOC 2012, :mod:`.coco` MS-COCO 2014, :mod:`.folder` image folder
plus labels CSV), image decoding shared by all (:mod:`.images`), id list files (:mod:`.id_lists`), conversions
between layouts (:mod:`.convert`), preprocessing primitives (:mod:`.transforms`) and a deterministic synthetic
dataset in the VOC layout (:mod:`.demo`).

Conventions shared by all: images are numpy uint8 ``(H, W, 3)`` RGB; foreground class index ``c`` is
0-based; segmentation label value is ``c + 1``; 0 is background and 255 is ignore/void.
Importing this package has no side effects; submodules are imported explicitly where they are needed.
"""
