"""Per-stream sessions over loaded models."""

from streamseq.streaming.session import BufferedProcessor, FrameOutputs, Session, StreamState

__all__ = ["BufferedProcessor", "FrameOutputs", "Session", "StreamState"]
