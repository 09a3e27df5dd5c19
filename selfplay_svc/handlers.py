"""selfplay_svc handlers.

- checkpoints: remember each run's latest checkpoint; on a reflection step (the run's own
  schedule, else INTROSPECT_REFLECT_EVERY), generate one
  reflection per (run, step, prompt version) with the run's active prompt, score it, publish it.
- journal entries: answer human questions from the latest checkpoint; during a bias pause,
  gather human counter-examples and explanations.
- detections: keep each run's recent bias findings (summary, severity, span, explanation, the
  excerpt around the span) from the detection events, for the protocol to quote.
- control: a bias pause (by its typed cause) writes the supportive protocol entry with its
  finding and arms the supportive framing of the next reflection; the resume sends the gathered
  texts to the trainer as a mix command.
Per-run state (latest checkpoint, findings, protocol, claims) is in a KV bucket, shared by all
instances.
"""
from __future__ import annotations

import asyncio
import logging

import msgspec

from shared import bus
from shared.bus import control
from shared.contract import events, subjects
from selfplay_svc import prompt_store
from shared.bus import kv_state as state
from shared.bus.consumer import Binding
from shared.model.generate import generate
from selfplay_svc.prompts import DEFAULT_VERSION, build_reflection_prompt
from selfplay_svc.protocol import (
    MITIGATION_TYPES, Finding, finding_of, finding_of_cause, is_bias_pause, mitigation_mix, pause_entry,
)
from selfplay_svc.scoring import score_reflection

log = logging.getLogger("selfplay_svc")
REFLECTION_SAMPLING = {"temperature": 0.8, "top_k": 50}
MITIGATION_WEIGHT = 0.2
FINDINGS_KEPT = 64  # recent bias findings per run; a pause follows its detection within seconds
DETECTION_WAIT_S = 1.0  # a pause usually overtakes its detection by milliseconds (two consumers)
DETECTION_DELIVERIES = 3  # then the kit's retries wait 2 s and 4 s before the pause's cause is used


class SelfPlay:
    def __init__(self, js, kv, state_kv, pool, models, settings):
        self.js, self.kv, self.state_kv, self.pool = js, kv, state_kv, pool
        self.models, self.settings = models, settings

    # --- checkpoints -> reflections ----------------------------------------------------------
    async def on_checkpoint(self, cp: events.Checkpoint, msg) -> None:
        latest = {"object_name": cp.object_name, "sha256": cp.sha256, "step": cp.step}
        await state.update(self.state_kv, f"latest.{cp.run_id}",  # checkpoints may arrive out of order
                           lambda saved: (latest if not saved or saved["step"] <= cp.step else saved, None))
        schedule = await control.read_reflect_schedule(self.kv, cp.run_id)
        every = schedule.every if schedule else self.settings.reflect_every
        if cp.step % every and cp.reason != "final":
            return
        version, template = await prompt_store.active_prompt(self.pool, cp.run_id, DEFAULT_VERSION)
        claim = f"claim.{cp.run_id}.{cp.step}.{version.replace('.', '_')}"
        if not await state.claim(self.state_kv, claim) and msg.metadata.num_delivered == 1:
            return  # another instance is writing this reflection
        protocol = await state.get(self.state_kv, f"protocol.{cp.run_id}") or {}
        # a checkpoint from before the pause, handled late, is not the reflection after it
        pending = protocol.get("supportive_pending") and cp.step >= protocol.get("pause_step", 0)
        supportive = protocol.get("detection") if pending else None
        prompt = build_reflection_prompt(template, cp.step, supportive=supportive)
        text = await self.write(cp.object_name, cp.sha256, prompt, seed=cp.step)
        await bus.publish(self.js, events.Reflection(
            event_id=events.stable_event_id("reflection", cp.run_id, cp.step, version),
            run_id=cp.run_id, step=cp.step, text=text, prompt_version=version, prompt=prompt,
            checkpoint=cp.object_name, checkpoint_sha256=cp.sha256,
            sampling={**REFLECTION_SAMPLING, "seed": cp.step, "max_new_tokens": self.settings.reflect_tokens},
            scores=score_reflection(text), supportive=supportive is not None))
        if supportive is not None:
            await state.merge(self.state_kv, f"protocol.{cp.run_id}", {"supportive_pending": False})

    async def write(self, object_name: str, sha256: str, prompt: str, seed: int) -> str:
        model, tokenizer, _ = await self.models.model(object_name, sha256)
        return await asyncio.to_thread(generate, model, tokenizer, prompt, self.settings.reflect_tokens,
                                       REFLECTION_SAMPLING["temperature"], REFLECTION_SAMPLING["top_k"], seed)

    # --- journal entries -> answers, mitigation texts -----------------------------------------
    async def on_entry(self, entry: events.JournalEntry, msg) -> None:
        if entry.author != "human":
            return
        if entry.entry_type == "question":
            await self.answer(entry)
        elif entry.entry_type in MITIGATION_TYPES:
            protocol = await state.get(self.state_kv, f"protocol.{entry.run_id}")
            if protocol and protocol.get("paused"):
                await state.update(self.state_kv, f"protocol.{entry.run_id}", lambda saved: (
                    {**saved, "texts": [*saved.get("texts", []), entry.body]}, None))

    async def answer(self, question: events.JournalEntry) -> None:
        latest = await state.get(self.state_kv, f"latest.{question.run_id}")
        if latest is None:
            raise LookupError(f"run {question.run_id} has no checkpoint yet")  # retried, then DLQ
        prompt = f"Question: {question.body}\nAnswer:"
        answer = await self.write(latest["object_name"], latest["sha256"], prompt, seed=0)
        await bus.publish(self.js, events.Reply(
            event_id=events.stable_event_id("reply", question.event_id), run_id=question.run_id,
            step=latest["step"], conversation_id=question.conversation_id or question.event_id,
            question_event_id=question.event_id, question=question.body, answer=answer.strip(),
            checkpoint=latest["object_name"], checkpoint_sha256=latest["sha256"]))

    # --- detections -> findings the protocol quotes ---------------------------------------------
    async def on_detection(self, detection: events.Detection, msg) -> None:
        if detection.detector != "bias":
            return
        finding = msgspec.to_builtins(finding_of(detection))

        def remember(saved):
            recent = {k: v for k, v in (saved or {}).items() if k != detection.event_id}
            recent[detection.event_id] = finding
            return dict(list(recent.items())[-FINDINGS_KEPT:]), None
        await state.update(self.state_kv, f"findings.{detection.run_id}", remember)

    async def pause_finding(self, cmd: events.ControlCommand, msg) -> Finding:
        """The finding that caused a bias pause, from its detection event; when that has not come
        after the kit's retries, what the pause's typed cause says."""
        found = await state.wait_for(self.state_kv, f"findings.{cmd.run_id}",
                                     lambda recent: recent.get(cmd.detection_id), DETECTION_WAIT_S)
        if found is not None:
            return msgspec.convert(found, Finding)
        if msg.metadata.num_delivered < min(DETECTION_DELIVERIES, self.settings.max_deliver):
            raise LookupError(f"detection {cmd.detection_id} not seen yet; the pause is retried")
        log.warning("bias pause without its detection event; using its cause",
                    extra={"run": cmd.run_id, "detection": cmd.detection_id})
        return finding_of_cause(cmd)

    # --- control -> the bias protocol ---------------------------------------------------------
    async def on_control(self, cmd: events.ControlCommand, msg) -> None:
        key = f"protocol.{cmd.run_id}"
        if is_bias_pause(cmd):
            finding = await self.pause_finding(cmd, msg)
            title, body = pause_entry(finding, cmd.run_id, cmd.step)
            await bus.publish(self.js, events.JournalEntry(
                event_id=events.stable_event_id("protocol", cmd.event_id), run_id=cmd.run_id,
                step=cmd.step, author="system", entry_type="protocol", title=title, body=body,
                who="selfplay_svc", refs={"command": cmd.event_id, "detection": cmd.detection_id}))
            await state.merge(self.state_kv, key, {
                "paused": True, "supportive_pending": True, "texts": [], "pause_id": cmd.event_id,
                "pause_step": cmd.step,
                "detection": msgspec.to_builtins(finding)})
        elif isinstance(cmd.args, events.Resume):
            protocol = await state.get(self.state_kv, key) or {}
            if protocol.get("paused"):
                await self.send_mitigation(cmd, protocol)
                await state.merge(self.state_kv, key, {"paused": False})

    async def send_mitigation(self, resume: events.ControlCommand, protocol: dict) -> None:
        texts = protocol.get("texts", [])
        if not texts:
            return
        mix = control.command(resume.run_id, mitigation_mix(texts, MITIGATION_WEIGHT), step=resume.step,
                              who="selfplay_svc",
                              reason="bias protocol: human counter-examples and explanations")
        await control.send(self.js, self.kv, mix, bus.nats_user(self.settings))
        await bus.publish(self.js, events.JournalEntry(
            event_id=events.stable_event_id("mitigation", resume.event_id), run_id=resume.run_id,
            step=resume.step, author="system", entry_type="protocol", who="selfplay_svc",
            title="Mitigation data sent to the trainer",  # its answer (mix event or rejection) says if it joined
            body=f"{len(texts)} human counter-examples and explanations written during the pause are sent "
                 f"to join the data mix with weight {MITIGATION_WEIGHT}; the trainer's mix change (or its "
                 f"rejection) follows.", refs={"command": mix.event_id}))


def bindings(selfplay: SelfPlay) -> list[Binding]:
    return [Binding(*subjects.SELFPLAY_CHECKPOINTS, handler=selfplay.on_checkpoint,
                    accepts=(events.Checkpoint,)),
            Binding(*subjects.SELFPLAY_QUESTIONS, handler=selfplay.on_entry, accepts=(events.JournalEntry,)),
            Binding(*subjects.SELFPLAY_DETECTIONS, handler=selfplay.on_detection,
                    accepts=(events.Detection,)),
            Binding(*subjects.SELFPLAY_CONTROL, handler=selfplay.on_control, ordered=True,
                    accepts=(events.ControlCommand,))]
