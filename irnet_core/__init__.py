"""irnet_core: the library behind the IRNet Snakemake workflow.

Weakly supervised instance and semantic segmentation from image-level labels (Ahn, Cho, Kwak, CVPR 2019):
CAMs -> inter-pixel relations -> IRNet (boundaries + displacements) -> random walk -> pseudo-labels.
Every module is importable and testable without Snakemake; the workflow scripts are thin wrappers.
"""

__version__ = "0.1.0"
