"""The one place that names the modules of `nnrun.data`: which reads each source, which handles each kind of features.

Each module imports its heavy libraries (pandas, Pillow, TensorFlow) inside the
functions that need them, so importing them all here costs little.
"""

from nnrun.data import arrays, bundled, csv_table, image_folder, keras_datasets, npz, parquet_table

# config `data.source` -> the module that reads it (`read(data) -> Raw`)
SOURCES = {
    "sklearn": bundled,
    "keras": keras_datasets,
    "npz": npz,
    "csv": csv_table,
    "parquet": parquet_table,
    "images": image_folder,
}
# preprocessing["kind"] -> the module that prepares those features (`check`, `fit`, `apply`, `feed`)
FEATURE_KINDS = {module.KIND: module for module in (arrays, csv_table, image_folder)}
