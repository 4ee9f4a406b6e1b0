"""Dataset layer: the PASCAL VOC 2012 layout (:mod:`.voc`), preprocessing primitives (:mod:`.transforms`)
and a deterministic synthetic dataset in the same layout (:mod:`.demo`).

Conventions shared by all three: images are numpy uint8 ``(H, W, 3)`` RGB; foreground class index ``c`` is
0-based; segmentation label value is ``c + 1``; 0 is background and 255 is ignore/void.
Importing this package has no side effects; submodules are imported explicitly where they are needed.
"""
