"""Preprocessing: from any dataset of the data layer to the cached arrays models read.

settings.py   configs/preprocess.yaml, typed
kinds.py      the input kinds (frames, special, flow, apex) and what each depends on
sampling.py   which frames a clip contributes
flow.py       onset->apex optical flow (TV-L1, DIS, Farneback) and its image form
crop.py       offline face crops (MTCNN, or a Haar cascade given on disk)
mtcnn.py      MTCNN's three-stage face and landmark detector, on facenet-pytorch's packaged weights
worker.py     the per-sample work, in worker processes
cache.py      the content-addressed cache
pipeline.py   `prepare` and `load_prepared`, the entry points
"""

__all__ = ["Prepared", "PrepareReport", "load_prepared", "prepare"]


def __getattr__(name: str):
    # lazy, so that worker processes import only what the per-sample work needs (numpy, OpenCV)
    if name in __all__:
        from hsta_bench.preprocess import pipeline as module  # noqa: PLC0415 - see above

        return getattr(module, name)
    raise AttributeError(name)
