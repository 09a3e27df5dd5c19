"""The model every service loads: GPT, tokenizer, checkpoint format and generation (needs torch)."""
