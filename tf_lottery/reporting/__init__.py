"""The paper's figures and tables from a model_dir (``python -m tf_lottery.report``)."""
