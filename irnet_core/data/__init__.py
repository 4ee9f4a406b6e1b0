"""Dataset layer, only data: the interface every source format implements (:mod:`.base`), the formats
(:mod:`.voc` PASCAL VOC 2012, :mod:`.coco` MS-COCO 2014, :mod:`.folder` image folder plus labels CSV), the
factory that opens the configured one (:mod:`.dataset`: :func:`~.dataset.open_dataset`), image decoding shared
by all (:mod:`.images`), id list files (:mod:`.id_lists`) and conversions between layouts (:mod:`.convert`).

What feeds the networks (transforms, torch Datasets) sits beside the stages that use them, and the synthetic
demo dataset is a tool (:mod:`irnet_core.tools.demo_generator`); nothing here imports them or any stage.

Conventions shared by all: images are numpy uint8 ``(H, W, 3)`` RGB; foreground class index ``c`` is
0-based; segmentation label value is ``c + 1``; 0 is background and 255 is ignore/void.
Importing this package has no side effects; submodules are imported explicitly where they are needed.
"""
