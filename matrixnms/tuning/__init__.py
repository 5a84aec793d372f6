"""Tuning NMS on a dataset: the candidate format, the sweep over NMS variants and rescoring.

- ``candidates``: the Parquet candidate format (one row per image), its reader and writer;
- ``variants``: NMS variants, grids of them, and their application to one image;
- ``engines``: running every variant over every image in one process (``local``) or on Ray Data (``ray``);
- ``evaluation``: COCO mask AP, whole or split by image (evaluated where the NMS ran, accumulated at the end);
- ``sweep``: COCO mask AP of every variant, the table, ``sweep.json``, ``results.md``, the plot; ``rescore``.

Nothing here is imported by ``import matrixnms``; pyarrow, pycocotools, ray and matplotlib load on use.
"""
