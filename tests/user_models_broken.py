"""A user's module that fails on import (``--model=tests.user_models_broken:cnn``)."""

raise RuntimeError("this module is broken")
