"""Checkpoints from the NATS object store, cached on local disk by sha256 and in memory, so each
instance downloads a checkpoint once and never needs a shared disk."""
from __future__ import annotations

import asyncio
import os
from collections import OrderedDict, defaultdict
from pathlib import Path

from shared.model.checkpoint import file_sha256, load_model_for_inference


class ModelCache:
    def __init__(self, store, cache_dir: Path, keep: int = 2):
        self.store, self.cache_dir, self.keep = store, Path(cache_dir), keep
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self.loaded: OrderedDict[str, tuple] = OrderedDict()
        # one fetch and one load per checkpoint at a time: two handlers asking for the same one
        # (a reflection and a question) used to write the same .part file, and one of them crashed
        self.locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    async def fetch(self, object_name: str, sha256: str) -> Path:
        path = self.cache_dir / f"{sha256}.pt"
        if path.exists():
            return path
        partial = path.with_name(f".{path.name}.{os.getpid()}.part")  # instances may share the folder
        with open(partial, "wb") as f:  # writeinto streams to disk instead of joining chunks
            await self.store.get(object_name, writeinto=f)
        if await asyncio.to_thread(file_sha256, partial) != sha256:
            partial.unlink()
            raise ValueError(f"checkpoint {object_name} does not match its sha256")
        partial.replace(path)
        return path

    async def model(self, object_name: str, sha256: str):
        """(model, tokenizer, meta) of a checkpoint, loaded off the event loop."""
        async with self.locks[sha256]:
            if sha256 in self.loaded:
                self.loaded.move_to_end(sha256)
                return self.loaded[sha256]
            path = await self.fetch(object_name, sha256)
            self.loaded[sha256] = await asyncio.to_thread(load_model_for_inference, path)
            while len(self.loaded) > self.keep:
                self.loaded.popitem(last=False)
            return self.loaded[sha256]
