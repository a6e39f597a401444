"""The checks an export passes before anything is published. A failure names the check and why.

1. loads: llama-server loads the GGUF (with its LoRAs) and answers a chat request.
2. chat template: the GGUF carries the model's chat template, and the tokens llama-server feeds
   the model for a conversation (its rendering, tokenized with special tokens parsed and added)
   are the HF tokenizer's for the same conversation.
3. greedy: on fixed prompts, every token of llama-server's greedy answer from the f16 GGUF is
   the merged HF model's argmax too, up to a tie tolerance (f16 rounding moves logits by
   about 1e-3; a real difference moves them by whole units).
4. quantization loss: the mean log-likelihood of a fixed text under the quantized GGUF stays
   within a bound of the f16 GGUF's, anchored on llama.cpp's own published Q4_K_M loss
   (see SMALL_MODEL_FACTOR).
"""

from __future__ import annotations

import math
import subprocess
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from prefloop_core.contracts import Quantization
from prefloop_core.children import die_with_parent
from prefloop_core.net import NotReady, free_port, stop_process, wait_until_ready
from prefloop_core.toolchain import LlamaCpp
from prefloop_exporter.gguf_tools import mean_nll, published_ppl_loss

LOGLIK_TEXT = Path(__file__).parent / "data" / "loglik_text.txt"
CONVERSATION = [
    {"role": "system", "content": "You are a helpful assistant for game players."},
    {"role": "user", "content": "How do I craft a torch in Minecraft?"},
    {"role": "assistant", "content": "Put one coal above one stick in the crafting grid."},
    {"role": "user", "content": "팰월드에서 팰은 어떻게 잡나요?"},
]
GREEDY_QUESTIONS = [
    "How do I craft a torch in Minecraft?",
    "팰월드에서 팰을 어떻게 포획하나요?",
    "Which Overwatch heroes can heal their team?",
]
GREEDY_TOKENS = 16
TIE_TOLERANCE = 0.05

# The quantization-loss bound, in nats per token of mean negative log-likelihood on LOGLIK_TEXT:
# llama.cpp's published Q4_K_M loss (`llama-quantize --help`: +0.1754 PPL on Llama-3-8B, whose f16 PPL is
# 6.233160 in tools/perplexity/README.md) is ln(1 + 0.1754 / 6.2332) = 0.0278 nats/token. Small models lose
# more: SmolLM2-135M-Instruct measured 0.074 for Q4_K_M and 0.122 for Q5_K_M (its weights come dequantized from
# Q4_1, so every other grid re-rounds them), and 0.324 for Q2_K. The bound is 6x the anchor (0.167): every
# quantization we offer (4 bits or more) must lose no more than that; Q2_K passed off as Q4_K_M does not pass.
ANCHOR_F16_PPL = 6.233160
ANCHOR_QUANT = "Q4_K_M"
SMALL_MODEL_FACTOR = 6.0


class VerificationFailed(RuntimeError):
    def __init__(self, check: str, reason: str) -> None:
        super().__init__(f"verification failed [{check}]: {reason}")
        self.check = check
        self.reason = reason


class LlamaServer:
    """llama-server on one GGUF (plus LoRAs) on a free loopback port, for the length of a `with` block."""

    def __init__(self, tools: LlamaCpp, model: Path, loras: list[Path], log: Path, ctx: int = 1024, parallel: int = 1) -> None:
        self.command = [
            str(tools.server),
            "-m",
            str(model),
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "-c",
            str(ctx * parallel),
            "-np",
            str(parallel),
            "--no-webui",
        ]
        for lora in loras:
            self.command += ["--lora", str(lora)]
        self.what = model.name + "".join(f" + {lora.name}" for lora in loras)
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""

    def __enter__(self) -> LlamaServer:
        port = free_port()
        self.command[self.command.index("--port") + 1] = str(port)
        self.url = f"http://127.0.0.1:{port}"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                self.command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, preexec_fn=die_with_parent()
            )
        try:
            wait_until_ready(f"{self.url}/health", 120, self.proc)
        except NotReady as exc:
            self.__exit__()
            raise VerificationFailed("loads", f"llama-server could not load {self.what}: {exc}\n{self.log_tail()}") from None
        return self

    def __exit__(self, *_: object) -> None:
        if self.proc is not None:
            stop_process(self.proc, 10)

    def log_tail(self, lines: int = 12) -> str:
        with open(self.log, errors="replace") as fh:
            return "".join(deque(fh, maxlen=lines))

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = httpx.request(method, self.url + path, timeout=120, **kwargs)
        response.raise_for_status()
        return response.json()


def check_loads_and_answers(server: LlamaServer) -> None:
    reply = server.call(
        "POST",
        "/v1/chat/completions",
        json={"messages": [{"role": "user", "content": GREEDY_QUESTIONS[0]}], "max_tokens": 8, "temperature": 0},
    )
    if reply["usage"]["completion_tokens"] < 1:
        raise VerificationFailed("loads", f"{server.what} loaded but produced no tokens")


def check_chat_template(server: LlamaServer, tokenizer: Any) -> None:
    if not tokenizer.chat_template:
        raise VerificationFailed(
            "chat template",
            "the model's tokenizer has no chat template, so the GGUF has none and "
            "llama-server would format chats its own way; export a chat (instruct) model",
        )
    served_template = server.call("GET", "/props").get("chat_template", "")
    if served_template.strip() != str(tokenizer.chat_template).strip():
        raise VerificationFailed(
            "chat template",
            f"llama-server serves a different chat template than the tokenizer's (served starts {served_template[:60]!r})",
        )
    rendered = tokenizer.apply_chat_template(CONVERSATION, tokenize=False, add_generation_prompt=True)
    hf_ids = tokenizer(rendered, add_special_tokens=False)["input_ids"]
    # What llama-server feeds the model for a chat: its rendering, tokenized with its special tokens added. A template
    # that writes the BOS itself (Gemma's) renders without it there, since the tokenizer adds it (no double BOS): the
    # texts differ, the tokens must not.
    served_render = server.call("POST", "/apply-template", json={"messages": CONVERSATION})["prompt"]
    served_ids = server.call("POST", "/tokenize", json={"content": served_render, "add_special": True, "parse_special": True})[
        "tokens"
    ]
    if served_ids != hf_ids:
        at = next((i for i, (a, b) in enumerate(zip(hf_ids, served_ids)) if a != b), min(len(hf_ids), len(served_ids)))
        raise VerificationFailed(
            "chat template",
            f"llama-server feeds the model other tokens for the same conversation: "
            f"ids differ at position {at} of {len(hf_ids)}: HF {hf_ids[at : at + 4]} vs llama-server "
            f"{served_ids[at : at + 4]}\nHF:    {rendered!r}\nllama: {served_render!r}",
        )


def check_greedy_agreement(server: LlamaServer, model: Any, tokenizer: Any) -> None:
    """llama-server's greedy tokens (f16 GGUF) must each be the merged HF model's argmax, up to a tie.

    The prompts go to the server together (one slot each when it has `len(GREEDY_QUESTIONS)`: decoding three
    sequences costs little more than one), and each answer is scored by the HF model as it arrives."""
    import torch

    prompts = [
        tokenizer(
            tokenizer.apply_chat_template([{"role": "user", "content": question}], tokenize=False, add_generation_prompt=True),
            add_special_tokens=False,
        )["input_ids"]
        for question in GREEDY_QUESTIONS
    ]

    def greedy(ids: list[int]) -> list[int]:
        return server.call(
            "POST",
            "/completion",
            json={"prompt": ids, "n_predict": GREEDY_TOKENS, "temperature": 0, "cache_prompt": False, "return_tokens": True},
        )["tokens"]

    with ThreadPoolExecutor(max_workers=len(prompts)) as pool:
        for question, ids, answer in zip(GREEDY_QUESTIONS, prompts, pool.map(greedy, prompts)):
            if not answer:
                continue
            with torch.no_grad():
                logits = model(torch.tensor([ids + answer])).logits[0, len(ids) - 1 : -1].float()
            for position, (row, token) in enumerate(zip(logits, answer)):
                gap = float(row.max() - row[token])
                if gap > TIE_TOLERANCE:
                    expected = int(row.argmax())
                    raise VerificationFailed(
                        "greedy",
                        (
                            f"on {question!r}, token {position + 1} of the GGUF's greedy answer is "
                            f"{tokenizer.decode([token])!r} but the merged HF model prefers {tokenizer.decode([expected])!r} "
                            f"by {gap:.2f} logits; GGUF answer so far: {tokenizer.decode(answer[: position + 1])!r}"
                        ),
                    )


def quantization_loss_bound(tools: LlamaCpp) -> float:
    """Allowed rise in mean NLL (nats/token) from f16 to any offered quantization (see SMALL_MODEL_FACTOR)."""
    published = published_ppl_loss(tools)
    if ANCHOR_QUANT not in published:
        raise VerificationFailed("quantization loss", f"llama-quantize --help publishes no loss for {ANCHOR_QUANT}")
    added_ppl, _ = published[ANCHOR_QUANT]
    return SMALL_MODEL_FACTOR * math.log1p(added_ppl / ANCHOR_F16_PPL)


def check_quantization_loss(
    tools: LlamaCpp, f16_nll: float, quantized: Path, quant: Quantization, loras: list[Path], text: Path = LOGLIK_TEXT
) -> float:
    """Returns the measured rise in mean NLL over `f16_nll` (the f16 GGUF's `mean_nll` of `text`, measured once per
    export however many quantizations it checks); raises when it passes the bound."""
    rise = mean_nll(tools, quantized, loras, text) - f16_nll
    bound = quantization_loss_bound(tools)
    if rise > bound:
        raise VerificationFailed(
            "quantization loss",
            (
                f"{quantized.name} ({quant.value}) loses {rise:.4f} nats/token against f16 on the fixed text; the bound "
                f"is {bound:.4f} ({SMALL_MODEL_FACTOR:g} x llama.cpp's published {ANCHOR_QUANT} loss)"
            ),
        )
    return rise
