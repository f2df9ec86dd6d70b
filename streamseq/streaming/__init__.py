"""Per-stream sessions and the multi-stream engine over loaded models.

Threads: :class:`Session`, :class:`BufferedProcessor` and :class:`Engine` each hold a lock
during every call, so one object may be used from several threads; its calls run one after
another, whole. Order between threads is whichever call takes the lock first.
"""

from streamseq.streaming.engine import Engine, EngineStream
from streamseq.streaming.outputs import FrameOutputs
from streamseq.streaming.session import BufferedProcessor, Session, finish_together

__all__ = ["BufferedProcessor", "Engine", "EngineStream", "FrameOutputs", "Session", "finish_together"]
