"""Running a benchmark: `hsta-bench run` as trials on Ray Tune (or in this process), resumable.

runner.py      a run from start to end: folder, plans, trials, dispatch, merge, --resume
record.py      run.json as a typed record (RunRecord), read back for --resume
trials.py      the trial, (model, dataset, protocol, fold group), and the code one runs
fragments.py   the per-fold predictions trials write, merged exactly once
ray_tune.py    trials as Ray Tune trials on a local instance or a cluster (--address)
trainable.py   the function such a trial calls in its worker
inprocess.py   the same trials one after another without Ray (--in-process)
view.py        the live view of trials (done / running / failed / pending, ETA)
estimate.py    --dry-run: the trials, their FLOPs and the wall time they would take on a cluster
calibrate.py   a CPU trial's training step, timed on this machine for the dry run
cluster.py     the nodes a run is planned for (this machine, --cluster, a Ray cluster)
"""
