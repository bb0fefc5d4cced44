"""The layer that ties the package together: layout (every name written under a
model_dir), typed records, and reading and writing them (``store``).

``layout`` and ``records`` are pure Python (no TensorFlow), so tests and the
report can use them without a session.
"""
