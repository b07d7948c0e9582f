"""The suite's own promises: collecting it imports no TensorFlow, and its markers hold."""

import conftest


def test_collecting_the_tests_imports_no_tensorflow_keras_or_jax():
    # A test module that imports them at its top (or an nnrun module that does) costs every
    # `pytest -m "not slow"` seconds of import; import them inside the test that needs them.
    assert conftest.imported_at_collection == []
