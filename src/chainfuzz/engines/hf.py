"""transformers on the CPU as an inference engine: ``generate`` over a batch of prompt ids.

The reference engine: fp32, greedy, left padding with an attention mask (what batched
generation needs). The constructor's switches build the negative controls the engine
properties are tested with: sampling instead of greedy, padding without an attention mask.
"""

from __future__ import annotations

from pathlib import Path


class TransformersEngine:
    """``AutoModelForCausalLM.generate`` on a model folder, a fixed number of new tokens."""

    def __init__(self, folder: Path, *, temperature: float = 0.0, attention_mask: bool = True) -> None:
        import torch
        from transformers import AutoModelForCausalLM

        self.torch = torch
        self.model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32).eval()
        config = self.model.config
        self.pad_id = config.pad_token_id if config.pad_token_id is not None else config.eos_token_id or 0
        self.temperature = temperature
        self.attention_mask = attention_mask
        self.name = "transformers" + ("" if temperature == 0 else f"(temperature={temperature:g})") \
            + ("" if attention_mask else "(no attention mask)")

    def generate(self, prompts: list[list[int]], max_new_tokens: int) -> list[list[int]]:
        """The new token ids of each prompt, generated together as one left-padded batch.

        EOS does not stop a row: every row gets exactly ``max_new_tokens``, so rows compare.
        """
        torch = self.torch
        width = max(len(p) for p in prompts)
        ids = torch.tensor([[self.pad_id] * (width - len(p)) + p for p in prompts])
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
        if not self.attention_mask:
            mask = torch.ones_like(mask)
        sample = self.temperature > 0
        with torch.no_grad():
            out = self.model.generate(
                input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens,
                min_new_tokens=max_new_tokens, do_sample=sample, pad_token_id=self.pad_id,
                **({"temperature": self.temperature, "top_k": 0, "top_p": 1.0} if sample else {}),
            )
        return [row[width:].tolist() for row in out]
