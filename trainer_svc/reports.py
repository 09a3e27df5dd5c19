"""The periodic reports, each a function of the model that returns its events (the loop emits them):
activation statistics, validation bits per byte per source, CORE, bias probes, and text samples."""
from __future__ import annotations

from shared.contract.events import ActivationStats, EvalResult, Sample, stable_event_id
from shared.model.generate import GREEDY, Sampling, generate_texts
from shared.contract.probes import probe_name
from trainer_svc.activations import layer_stats
from trainer_svc.bias_probes import run_probes
from trainer_svc.build import Placement
from trainer_svc.evaluate import evaluate_bpb, evaluate_core
from trainer_svc.probe_sets import ProbeSet

SAMPLE_PROMPTS = ["To be, or not to be", "The king said", "Once upon a time", "I think that"]
SAMPLED_SETTINGS = dict(temperature=0.8, top_k=40)


def activations_report(stats, run_id: str, step: int) -> list[ActivationStats]:
    """The statistics the step's own forward gathered (a device tensor), as one event."""
    return [ActivationStats(event_id=stable_event_id(run_id, "activations", step), run_id=run_id,
                            step=step, layers=layer_stats(stats))]


def bpb_report(model, loader, sources: list[str], primary_sources: list[str], tokens: int, batch_size: int,
               token_bytes, placement: Placement, run_id: str, step: int) -> list[EvalResult]:
    """val_bpb: the mean over the primary sources, with every source's own figure in its details."""
    per_source = {}
    for name in sources:
        batches = loader.val_batches(name, tokens, batch_size, placement.device)
        bpb = evaluate_bpb(model, batches, token_bytes, placement.autocast())
        if bpb is not None:
            per_source[name] = bpb
    primary = [per_source[n] for n in primary_sources if n in per_source]
    if not primary:
        return []
    details = {f"bpb:{name}": value for name, value in per_source.items()}
    return [EvalResult(event_id=stable_event_id(run_id, "eval", step, "val_bpb"), run_id=run_id, step=step,
                       name="val_bpb", value=sum(primary) / len(primary),
                       details={**details, "tokens_per_source": tokens})]


def core_report(model, tokenizer, tasks: dict, batch_size: int, max_examples: int | None, placement: Placement,
                run_id: str, step: int) -> list[EvalResult]:
    """One result per CORE task (its centred accuracy; accuracy, chance and examples in details) and
    their mean as "core", with every task's centred score in its details."""
    results = evaluate_core(model, tokenizer, tasks, model.config.sequence_len, placement.device,
                            batch_size, max_examples, placement.autocast())
    reports = [EvalResult(event_id=stable_event_id(run_id, "eval", step, f"core:{task}"), run_id=run_id,
                          step=step, name=f"core:{task}", value=result["centered"], details=result)
               for task, result in results.items()]
    if results:
        mean = sum(r["centered"] for r in results.values()) / len(results)
        per_task = {f"core:{task}": r["centered"] for task, r in results.items()}
        reports.append(EvalResult(event_id=stable_event_id(run_id, "eval", step, "core"), run_id=run_id,
                                  step=step, name="core", value=mean, details={**per_task, "tasks": len(results)}))
    return reports


def probes_report(model, tokenizer, probe_set: ProbeSet, token_budget: int, placement: Placement, run_id: str,
                  step: int) -> list[EvalResult]:
    """One result per bias probe and axis ("probe:crows_pairs", "probe:crows_pairs:gender", ...)."""
    scores = run_probes(model, tokenizer, probe_set, model.config.sequence_len, placement.device, token_budget,
                        placement.autocast())
    return [EvalResult(event_id=stable_event_id(run_id, "eval", step, probe_name(probe, axis)), run_id=run_id,
                       step=step, name=probe_name(probe, axis), value=score,
                       details={"probe": probe, "axis": axis, "n": n})
            for (probe, axis), (score, n) in scores.items()]


def samples_report(model, tokenizer, tokens: int, seed: int, placement: Placement, run_id: str, step: int) -> list[Sample]:
    """A greedy and a sampled continuation of each prompt, all in one batch; the sampled one's seed is
    in its event."""
    seeds = [seed + step + i for i in range(len(SAMPLE_PROMPTS))]
    requests = [(prompt, GREEDY) for prompt in SAMPLE_PROMPTS]
    requests += [(prompt, Sampling(seed=s, **SAMPLED_SETTINGS)) for prompt, s in zip(SAMPLE_PROMPTS, seeds)]
    with placement.autocast():
        texts = generate_texts(model, tokenizer, requests, tokens)
    greedy, sampled = texts[:len(SAMPLE_PROMPTS)], texts[len(SAMPLE_PROMPTS):]
    reports = []
    for i, prompt in enumerate(SAMPLE_PROMPTS):
        reports.append(Sample(event_id=stable_event_id(run_id, "sample", step, i, "greedy"), run_id=run_id,
                              step=step, prompt=prompt, text=greedy[i], mode="greedy", max_new_tokens=tokens))
        reports.append(Sample(event_id=stable_event_id(run_id, "sample", step, i, "sampled"), run_id=run_id,
                              step=step, prompt=prompt, text=sampled[i], mode="sampled", seed=seeds[i],
                              max_new_tokens=tokens, **SAMPLED_SETTINGS))
    return reports
