"""The evaluation engine: splits (splits.py), training (train.py, fold-batched in batched.py), metrics
(metrics.py) and the results store (results.py), tied together by evaluate.py."""
