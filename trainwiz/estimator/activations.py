"""What one training step keeps alive between forward and backward, per family, in bytes.

Every number here is a tensor autograd saves (or one that is alive at a known moment), written
out by reading the model code of each transformers family. Names follow the tensors, so the
validation report can show where the memory goes.

Notation: b micro-batch, s sequence length, T = b*s tokens, h hidden size, a heads, kv key/value
heads, d head dim, f MLP intermediate size, V vocabulary.

Dtypes: ``Precision.compute`` is the bytes of matmul outputs (2 under bf16/fp16, 4 in fp32);
``Precision.residual`` the bytes of the residual stream (4 when the weights are fp32 — autocast
keeps embeddings, norms and residual adds in fp32 — 2 when FSDP gathers bf16 weights);
``Precision.autocast`` means each linear casts its fp32 input to a fresh low-precision copy,
and saves that copy, not its input. ``Precision.amp`` means an autocast region is active at all
(also under FSDP, whose weights are already low precision): ops on autocast's fp32 list, such as
softmax on CUDA, then return fp32.

Kernels are CUDA's. ``Precision.cuda=False`` sizes what CPU kernels keep instead (for comparing
with CPU measurements; see validation/): a dropout mask in the input's dtype rather than a bool,
and softmax, pow (GPT-2's gelu) and layer_norm left in low precision under CPU autocast.
"""

from __future__ import annotations

from dataclasses import dataclass

from trainwiz.estimator.types import ModelSpec

BOOL = 1  # dropout masks are bool tensors
FP32 = 4


@dataclass(frozen=True)
class Precision:
    compute: int
    residual: int
    autocast: bool
    amp: bool = False
    cuda: bool = True

    def mask(self, input_bytes: int) -> int:
        """Bytes per element of a dropout mask: CUDA's fused dropout keeps a bool mask, CPU's
        dropout multiplies by a scaled noise tensor in the input's dtype and keeps that."""
        return BOOL if self.cuda else input_bytes


@dataclass(frozen=True)
class Dims:
    b: int
    s: int
    h: int
    a: int
    kv: int
    d: int
    f: int
    V: int
    L: int

    @property
    def T(self) -> int:
        return self.b * self.s


def dims_of(model: ModelSpec, batch: int, seq: int) -> Dims:
    return Dims(b=batch, s=seq, h=model.hidden_size, a=model.num_heads, kv=model.num_kv_heads,
                d=model.head_dim, f=model.intermediate_size, V=model.vocab_size,
                L=model.num_layers)


@dataclass(frozen=True)
class Lora:
    """PEFT LoRA on every block: the base weights frozen, adapters on some linear layers.

    A frozen linear keeps nothing for a weight gradient (its input is not saved; under autocast
    the low-precision copy of its weight is, for the input gradient). Each adapter's lora_A keeps
    its own input: PEFT casts the input to the adapter's dtype (fp32: ``autocast_adapter_dtype``)
    and applies the adapter's own dropout, so under autocast, with dropout, or when the input is
    in another dtype, every adapter keeps a copy of its own; otherwise they share the one input.
    lora_B keeps lora_A's (tokens x rank) output.
    """

    rank: int
    parts: tuple  # the part of the block of each adapted layer: attn_in attn_out mlp_in mlp_out
    adapter_bytes: int = FP32  # the adapters' dtype when they compute
    quantized: bool = False  # QLoRA: bitsandbytes' 4-bit layers return their input's dtype
    dropout: float = 0.0
    dequant: int = 0  # QLoRA: the largest weight, dequantized while its layer computes

    def count(self, part: str) -> int:
        return sum(p == part for p in self.parts)


def _adapter_inputs(saved: dict, name: str, part: str, elems: int, input_bytes: int,
                    prec: Precision, lora: Lora) -> None:
    """What the adapters on ``part`` keep of their input (``elems`` elements, ``input_bytes``)."""
    n = lora.count(part)
    if not n:
        return
    ab = lora.adapter_bytes
    if lora.dropout > 0:  # dropout(x.to(adapter dtype)): a mask and a fresh tensor per adapter
        saved[f"{name}.lora_dropout.mask"] = n * elems * prec.mask(ab)
        saved[f"{name}.lora_A.input"] = n * elems * (prec.compute if prec.autocast else ab)
    elif prec.autocast or input_bytes != ab:  # autocast's (or PEFT's) cast, one per adapter
        saved[f"{name}.lora_A.input"] = n * elems * (prec.compute if prec.autocast else ab)
    else:
        saved[name] = elems * input_bytes  # the input itself, shared


def _adapter_outputs(saved: dict, T: int, prec: Precision, lora: Lora | None) -> None:
    """lora_A's output, kept by lora_B, for every adapter of the block."""
    if lora is not None and lora.parts:
        out = prec.compute if prec.autocast else lora.adapter_bytes
        saved["lora_A.outputs"] = len(lora.parts) * T * lora.rank * out


@dataclass(frozen=True)
class BlockMemory:
    """One transformer block: what it saves for backward, and its short-lived peaks."""

    saved: dict  # name -> bytes kept from forward to backward
    forward_transient: int  # extra bytes alive for a moment inside the block's forward
    backward_transient: int  # extra bytes alive for a moment inside the block's backward

    @property
    def saved_total(self) -> int:
        return sum(self.saved.values())


def _linear_inputs(saved: dict, name: str, consumers: int, elems: int, input_bytes: int,
                   prec: Precision) -> None:
    """The input of ``consumers`` linears reading one tensor of ``elems`` elements.

    Under autocast an fp32 input is cast once per linear (autocast caches only leaf weights), and
    each cast copy is saved; otherwise the one input tensor is saved and shared.
    """
    if prec.autocast and input_bytes == FP32:
        saved[f"{name}.cast"] = consumers * elems * prec.compute
    else:
        saved[name] = elems * input_bytes


def _rms_norm(saved: dict, name: str, T: int, h: int, prec: Precision, gemma: bool,
              frozen: bool = False) -> int:
    """Saves of an RMSNorm over the residual stream; returns the output's bytes per element.
    A frozen norm weight (LoRA) needs no weight gradient: the normalized input is not kept."""
    if prec.residual == FP32:
        saved[f"{name}.input"] = T * h * FP32  # x (the residual itself), kept by pow and mul
        if not frozen:
            saved[f"{name}.normalized"] = T * h * FP32  # x * rsqrt(var + eps), for the weight grad
        return FP32
    # bf16 residual stream: the norm upcasts, so the fp32 copy is what backward keeps
    saved[f"{name}.input_fp32"] = T * h * FP32
    if frozen:
        pass
    elif gemma:  # (x * rsqrt * (1 + w)) in fp32, then .type_as(x)
        saved[f"{name}.normalized"] = T * h * FP32
    else:  # weight * x_normalized.to(bf16)
        saved[f"{name}.normalized"] = T * h * prec.residual
    return prec.residual


def _sdpa(saved: dict, dims: Dims, prec: Precision, attention: str, q_elems_shared: bool = False,
          dropout: float = 0.0, softmax_fp32: bool = True, probs_bytes: int | None = None) -> int:
    """Attention core; returns its forward transient. q/k/v/out are (b, heads, s, d).

    Eager attention is transformers' ``eager_attention_forward``: scores = q @ k^T, softmax
    (``softmax_fp32``: asked for in fp32, as llama-style models do; else in the scores' dtype,
    which autocast on CUDA raises to fp32), cast to ``probs_bytes`` (llama: q's dtype, which is
    the residual stream's, fp32 under autocast, because RoPE multiplies by fp32 cos/sin; GPT-2:
    v's; BERT does not cast: None), dropout, probs @ v. With attention dropout the softmax output, the mask and
    the dropped probabilities are all kept for backward. SDPA's CUDA kernels keep none of that,
    with or without dropout (the mask is regenerated from the RNG state).
    """
    T, e = dims.T, prec.compute
    if not q_elems_shared:
        saved["attn.q"] = T * dims.a * dims.d * e
        saved["attn.k"] = T * dims.kv * dims.d * e
        saved["attn.v"] = T * dims.kv * dims.d * e
    saved["attn.out"] = T * dims.a * dims.d * e  # also the o-projection's input
    if attention == "eager":
        scores = dims.b * dims.a * dims.s * dims.s
        if dims.kv != dims.a and not q_elems_shared:  # repeat_kv materialises full-head k and v
            saved["attn.k"] = saved["attn.v"] = T * dims.a * dims.d * e
        amp_fp32 = prec.amp and prec.cuda  # CPU autocast leaves softmax in low precision
        sm = FP32 if (softmax_fp32 or e == FP32 or amp_fp32) else e
        saved["attn.softmax"] = scores * sm  # softmax keeps its output for backward
        probs = probs_bytes or sm  # .to(q.dtype): a copy when the dtype changes
        fresh = probs != sm  # a new tensor, not the softmax output itself
        if dropout > 0:
            saved["attn.dropout.mask"] = scores * prec.mask(probs)
            fresh = True  # the dropped probabilities are a new tensor
        if prec.amp and probs == FP32 and e != FP32:
            saved["attn.probs"] = scores * e  # autocast's matmul keeps its bf16 copy of them
        elif fresh:
            saved["attn.probs"] = scores * probs  # kept by probs @ v
        return 2 * scores * e  # q @ k^T and the masked scores before softmax
    saved["attn.lse"] = dims.b * dims.a * dims.s * FP32  # logsumexp of the flash kernels
    return 0


def block_memory(model: ModelSpec, dims: Dims, prec: Precision, attention: str,
                 lora: Lora | None = None) -> BlockMemory:
    family = model.family
    if family in ("gpt2", "bert"):
        return _block_layernorm_family(model, dims, prec, attention, lora)
    T, h, f, e = dims.T, dims.h, dims.f, prec.compute
    gemma = family in ("gemma", "gemma2")
    frozen = lora is not None
    # bitsandbytes' 4-bit layers return their input's dtype: the MLP runs in the residual's
    lo = prec.residual if frozen and lora.quantized else e
    saved: dict = {}
    out1 = _rms_norm(saved, "norm1", T, h, prec, gemma, frozen)
    if frozen:
        _adapter_inputs(saved, "qkv_proj.input", "attn_in", T * h, out1, prec, lora)
    elif family == "phi3":  # fused qkv_proj: q, k, v are views of one (T, q+2kv) output
        _linear_inputs(saved, "qkv_proj.input", 1, T * h, out1, prec)
    else:
        _linear_inputs(saved, "qkv_proj.input", 3, T * h, out1, prec)
    fwd_t = _sdpa(saved, dims, prec, attention, dropout=model.attention_dropout,
                  probs_bytes=prec.residual)
    # o_proj reads attn.out; its output is added to the fp32/bf16 residual
    if frozen:
        _adapter_inputs(saved, "attn.out", "attn_out", T * dims.a * dims.d, e, prec, lora)
    saved["residual"] = 0  # the block input is counted as norm1.input (or the checkpoint input)
    if family == "gemma2":  # post-attention norm on the branch, then pre-feedforward norm
        _rms_norm(saved, "norm_post_attn", T, h, prec, gemma, frozen)
        out2 = _rms_norm(saved, "norm2", T, h, prec, gemma, frozen)
    else:
        out2 = _rms_norm(saved, "norm2", T, h, prec, gemma, frozen)
    if frozen:
        _adapter_inputs(saved, "gate_up.input", "mlp_in", T * h, out2, prec, lora)
    elif family == "phi3":
        _linear_inputs(saved, "gate_up.input", 1, T * h, out2, prec)
    else:
        _linear_inputs(saved, "gate_up.input", 2, T * h, out2, prec)
    saved["mlp.gate"] = T * f * lo  # kept by the activation
    saved["mlp.act"] = T * f * lo  # kept by the product
    saved["mlp.up"] = T * f * lo  # kept by the product
    if frozen:  # kept only by an adapter on down_proj
        _adapter_inputs(saved, "mlp.product", "mlp_out", T * f, lo, prec, lora)
    else:
        saved["mlp.product"] = T * f * e  # kept by down_proj
    if family == "gemma2":
        _rms_norm(saved, "norm_post_ffw", T, h, prec, gemma, frozen)
    del saved["residual"]
    _adapter_outputs(saved, T, prec, lora)
    # Backward of the MLP holds d(product), d(act) and d(up) at once, plus the block's output grad.
    bwd_t = 3 * T * f * lo + T * h * prec.residual
    fwd_t = max(fwd_t, T * f * lo)
    if frozen and lora.dequant:  # QLoRA: the weight in use, dequantized, while its matmul runs
        fwd_t += lora.dequant  # forward: in the compute dtype, beside the layer's output
        # backward: bitsandbytes dequantizes to the incoming gradient's dtype (the residual's)
        # for down_proj's input gradient, before the MLP's elementwise gradients exist
        bwd_t = max(bwd_t, T * h * prec.residual + T * f * lo
                    + lora.dequant // 2 * prec.residual)
    return BlockMemory(saved=saved, forward_transient=fwd_t, backward_transient=bwd_t)


def _dropout(saved: dict, name: str, elems: int, p: float, input_bytes: int,
             prec: Precision) -> None:
    if p > 0:
        saved[f"{name}.mask"] = elems * prec.mask(input_bytes)


def _block_layernorm_family(model: ModelSpec, dims: Dims, prec: Precision, attention: str,
                            lora: Lora | None = None) -> BlockMemory:
    T, h, f, e, r = dims.T, dims.h, dims.f, prec.compute, prec.residual
    p = model.hidden_dropout
    frozen = lora is not None

    def linear_input(name: str, part: str, elems: int, input_bytes: int) -> None:
        if frozen:
            _adapter_inputs(saved, name, part, elems, input_bytes, prec, lora)
        else:
            _linear_inputs(saved, name, 1 if part != "attn_in" or model.family == "gpt2" else 3,
                           elems, input_bytes, prec)

    saved: dict = {}
    if model.family == "gpt2":  # pre-LN
        saved["ln_1.input"] = T * h * r
        linear_input("c_attn.input", "attn_in", T * h, r)
        saved["attn.qkv"] = 3 * T * h * e  # q, k, v are views of c_attn's output
        fwd_t = _sdpa(saved, dims, prec, attention, q_elems_shared=True,
                      dropout=model.attention_dropout, softmax_fp32=False, probs_bytes=e)
        if frozen:
            _adapter_inputs(saved, "attn.out", "attn_out", T * h, e, prec, lora)
        _dropout(saved, "attn.resid_dropout", T * h, p, e, prec)
        saved["ln_2.input"] = T * h * r
        linear_input("c_fc.input", "mlp_in", T * h, r)
        # gelu_new, written out in Python: 0.5*x*(1+tanh(c*(x+0.044715*x**3)))
        if prec.autocast and prec.cuda:  # pow runs in fp32 under CUDA autocast: an fp32 chain
            saved["mlp.pow_input_fp32"] = T * f * FP32
            saved["mlp.tanh"] = T * f * FP32
            saved["mlp.one_plus_tanh"] = T * f * FP32
            saved["mlp.half_x"] = T * f * e
            if not frozen:
                saved["mlp.product.cast"] = T * f * e
        else:
            saved["mlp.x"] = T * f * e
            saved["mlp.tanh"] = T * f * e
            saved["mlp.one_plus_tanh"] = T * f * e
            saved["mlp.half_x"] = T * f * e
            if not frozen:
                saved["mlp.product"] = T * f * e
        if frozen:  # the product is fp32 under autocast (the chain is)
            _adapter_inputs(saved, "mlp.product", "mlp_out", T * f,
                            FP32 if prec.autocast else e, prec, lora)
        _dropout(saved, "mlp.dropout", T * h, p, e, prec)
        _adapter_outputs(saved, T, prec, lora)
        bwd_t = 3 * T * f * FP32 + T * h * r
        return BlockMemory(saved=saved, forward_transient=max(fwd_t, 2 * T * f * FP32),
                           backward_transient=bwd_t)
    # bert: post-LN; the block input is the previous LayerNorm's output (counted by the caller)
    linear_input("qkv.input", "attn_in", T * h, r)
    saved["attn.q"] = T * h * e
    saved["attn.k"] = T * h * e
    saved["attn.v"] = T * h * e
    fwd_t = _sdpa(saved, dims, prec, attention, q_elems_shared=True,
                  dropout=model.attention_dropout, softmax_fp32=False)
    if frozen:
        _adapter_inputs(saved, "attn.out", "attn_out", T * h, e, prec, lora)
    _dropout(saved, "attn.out_dropout", T * h, p, e, prec)
    saved["attn.ln.input"] = T * h * r  # dropout(dense(x)) + x, kept by LayerNorm
    saved["attn.ln.output"] = T * h * r  # input of the intermediate dense and of the next residual
    if frozen:
        _adapter_inputs(saved, "intermediate.input", "mlp_in", T * h, r, prec, lora)
    elif prec.autocast:
        saved["intermediate.input.cast"] = T * h * e
    saved["intermediate.gelu_input"] = T * f * e
    linear_input("output.input", "mlp_out", T * f, e)  # gelu output, kept by the dense
    _dropout(saved, "output.dropout", T * h, p, e, prec)
    saved["output.ln.input"] = T * h * r
    _adapter_outputs(saved, T, prec, lora)
    bwd_t = 2 * T * f * e + T * h * r
    return BlockMemory(saved=saved, forward_transient=max(fwd_t, T * f * e),
                       backward_transient=bwd_t)


@dataclass(frozen=True)
class HeadMemory:
    """Embeddings before the blocks, and norm + head + loss after them."""

    embed_saved: dict  # kept from the embedding stage (the first block's input among them)
    head_saved: dict  # kept by the final norm and the head for backward
    logits: int  # the head's output (kept while the caller holds the model output)
    loss_forward_transient: int  # alive only while the loss is computed
    loss_backward_transient: int  # the loss's backward: d(log_softmax), d(logits) in fp32


def head_memory(model: ModelSpec, dims: Dims, prec: Precision, frozen: bool = False) -> HeadMemory:
    """``frozen``: LoRA's frozen base: the final norm and the head keep nothing for weight
    gradients (their inputs are not saved; the norm's input still is)."""
    T, h, V, e, r = dims.T, dims.h, dims.V, prec.compute, prec.residual
    embed: dict = {"block_input": T * h * r}
    if model.family in ("gpt2", "bert"):
        _dropout(embed, "embed.dropout", T * h, model.embedding_dropout, r, prec)
    if model.family == "bert":
        embed["embed.ln.input"] = T * h * r
    head: dict = {}
    if model.head == "base":
        return HeadMemory(embed, {"final_norm.input": T * h * r}, T * h * r, 0, 0)
    if model.family in ("gpt2",):
        head["ln_f.input"] = T * h * r
        if not frozen:
            _linear_inputs(head, "lm_head.input", 1, T * h, r, prec)
    elif model.family == "bert":
        if model.head == "masked_lm":  # transform: dense + gelu + LayerNorm, then the decoder
            if not frozen:
                _linear_inputs(head, "transform.input", 1, T * h, r, prec)
            head["transform.gelu_input"] = T * h * e
            # LayerNorm is on CUDA autocast's fp32 list: it keeps an fp32 copy of its bf16 input
            head["transform.ln.input"] = T * h * (FP32 if prec.autocast and prec.cuda else e)
            if not frozen:
                _linear_inputs(head, "decoder.input", 1, T * h, r, prec)
    else:
        out = _rms_norm(head, "final_norm", T, h, prec, model.family in ("gemma", "gemma2"),
                        frozen)
        if not frozen:
            _linear_inputs(head, "lm_head.input", 1, T * h, out, prec)
    if model.head == "seq_cls":  # logits are (b, labels): the loss is negligible
        return HeadMemory(embed, head, dims.b * model.num_labels * FP32, 0, 0)
    logits = T * V * e
    # loss: logits.float() (a copy unless already fp32), log_softmax's output (saved).
    # transformers' causal-LM loss upcasts; BERT's masked-LM head calls CrossEntropyLoss on the
    # logits as they are, so without autocast (bf16-pure) its loss runs in bf16.
    loss_bytes = FP32 if (model.family != "bert" or prec.amp) else e
    upcast = T * V * FP32 if e != FP32 and loss_bytes == FP32 else 0
    if model.final_logit_softcapping:  # logits / cap, tanh (saved), * cap
        head["softcap.tanh"] = T * V * e
    head["loss.log_softmax"] = T * V * loss_bytes
    # backward: nll's grad (zeros + scatter) and log_softmax's grad, alive together
    return HeadMemory(embed, head, logits, loss_forward_transient=upcast,
                      loss_backward_transient=2 * T * V * loss_bytes)
