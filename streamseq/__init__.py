"""streamseq: online speech processing with recurrent networks.

    >>> import streamseq
    >>> model = streamseq.load_model("vad-uni")
    >>> session = streamseq.Session(model)
    >>> out = session.accept(samples, sample_rate=16000)   # new frames, as they become final
    >>> out.times, out.values[:, 0]                        # frame start (s), speech probability
    >>> tail = session.finish()                            # flush at end of stream
"""

from streamseq.models.checkpoint import CheckpointError, load_model
from streamseq.streaming import BufferedProcessor, Engine, FrameOutputs, Session
from streamseq.version import __version__

__all__ = ["BufferedProcessor", "CheckpointError", "Engine", "FrameOutputs", "Session", "__version__", "load_model"]
