"""Log-mel feature frontend (offline and streaming faces of one pipeline)."""

from streamseq.features.config import FeatureConfig
from streamseq.features.frontend import StreamingFrontend, compute_features
from streamseq.features.logmel import frames_for, log_mel

__all__ = ["FeatureConfig", "StreamingFrontend", "compute_features", "frames_for", "log_mel"]
