"""Test-wide environment: CPU DeepSpeed, quiet libraries, the repository as working dir."""

import os
from pathlib import Path

os.environ.setdefault("DS_ACCELERATOR", "cpu")
# No HF_HUB_OFFLINE here: the hub tests talk to a loopback Hub-API test double. Nothing may
# reach huggingface.co: code under test only gets local paths or the loopback endpoint.
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parent.parent
# tests read config/ and run scripts relative to the repository root
os.chdir(REPO)
