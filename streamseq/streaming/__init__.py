"""Per-stream sessions and the multi-stream engine over loaded models."""

from streamseq.streaming.engine import Engine, EngineStream
from streamseq.streaming.outputs import FrameOutputs
from streamseq.streaming.session import BufferedProcessor, Session

__all__ = ["BufferedProcessor", "Engine", "EngineStream", "FrameOutputs", "Session"]
