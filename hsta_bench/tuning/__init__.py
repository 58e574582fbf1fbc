"""`hsta-bench tune`: Optuna search through Ray Tune under a nested protocol.

space.py      search spaces (configs/models/*.yaml `space:`, --space), a sampled point applied to a recipe
nested.py     the studies: which subjects each may see, inner validation folds, the data its trials get
objective.py  a trial: a configuration trained on a study's inner folds, scored after every epoch
studies.py    a study's Optuna storage (SQLite, so a tune resumes) and its trials
searchers.py  the studies through one Ray Tune experiment (OptunaSearch per study, ASHA per study)
report.py     the trial table, parameter importances, the history plot, report.md
driver.py     a tune from start to end: tune.json, the studies, the outer run, best.yaml
"""
