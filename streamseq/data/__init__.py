"""Synthetic training data for VAD: TTS + recorded sources, frame labels, mixing, cached corpus."""

from streamseq.data.corpus import DEFAULT_CACHE, build_corpus, load_manifest
from streamseq.data.labels import speech_labels
from streamseq.data.mixing import Clip, MixConfig, NoisePool, SpeechPool, Utterance, make_clip
from streamseq.data.tts import Voice, list_voices, synthesize

__all__ = ["DEFAULT_CACHE", "build_corpus", "load_manifest", "speech_labels", "Clip", "MixConfig",
           "NoisePool", "SpeechPool", "Utterance", "make_clip", "Voice", "list_voices", "synthesize"]
