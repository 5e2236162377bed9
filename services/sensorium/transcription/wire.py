"""The transcription service on the wire: every message of `sensorium.transcription.v1` to and
from the domain types of `sensorium.transcription.api`, for the servicer and
`transcription.remote`. tests/unit/test_wire.py holds the two directions together.
"""

from __future__ import annotations

from sensorium.errors import Reason, SensoriumError
from sensorium.transcription.api import (
    Info,
    Options,
    RequestedOptions,
    Segment,
    Task,
    TranscriptionSummary,
    Word,
)
from sensorium.transcription.v1 import transcription_service_pb2 as pb
from sensorium.type.v1 import geometry_pb2

_TASKS: dict[int, Task] = {
    pb.TASK_UNSPECIFIED: "transcribe", pb.TASK_TRANSCRIBE: "transcribe", pb.TASK_TRANSLATE: "translate",
}
_TASK_ENUM = {"transcribe": pb.TASK_TRANSCRIBE, "translate": pb.TASK_TRANSLATE}


def options_from_message(message: pb.TranscriptionOptions) -> RequestedOptions:
    if message.task not in _TASKS:
        raise SensoriumError(Reason.INVALID_REQUEST, f"unknown task {message.task}")
    return RequestedOptions(
        language=message.language, task=_TASKS[message.task], beam_size=message.beam_size,
        word_timestamps=message.word_timestamps,
        vad_filter=message.vad_filter if message.HasField("vad_filter") else None,
        initial_prompt=message.initial_prompt, hotwords=message.hotwords,
        temperatures=tuple(message.temperatures),
        condition_on_previous_text=(message.condition_on_previous_text
                                    if message.HasField("condition_on_previous_text") else None),
        batched=message.batched, batch_size=message.batch_size,
    )


def options_to_message(
    options: RequestedOptions, *, allow_truncated: bool = False
) -> pb.TranscriptionOptions:
    message = pb.TranscriptionOptions(
        language=options.language, task=_TASK_ENUM[options.task], beam_size=options.beam_size,
        word_timestamps=options.word_timestamps, initial_prompt=options.initial_prompt,
        hotwords=options.hotwords, temperatures=options.temperatures, batched=options.batched,
        batch_size=options.batch_size, allow_truncated=allow_truncated,
    )
    if options.vad_filter is not None:
        message.vad_filter = options.vad_filter
    if options.condition_on_previous_text is not None:
        message.condition_on_previous_text = options.condition_on_previous_text
    return message


def info_to_message(info: Info) -> pb.TranscriptionInfo:
    options = info.options
    return pb.TranscriptionInfo(
        language=info.language, language_probability=info.language_probability,
        duration_seconds=info.duration, duration_after_vad_seconds=info.duration_after_vad,
        model=info.model, batched=options.batched, vad_filter=options.vad_filter,
        condition_on_previous_text=options.condition_on_previous_text,
        task=_TASK_ENUM[options.task], declared_duration_seconds=info.declared_duration or 0.0,
        truncated=info.truncated,
    )


def info_from_message(message: pb.TranscriptionInfo) -> Info:
    """The info as sent: of the options used, the message carries task, batched mode, VAD and
    conditioning; the others keep their defaults."""
    options = Options(
        task=_TASKS.get(message.task, "transcribe"), batched=message.batched,
        vad_filter=message.vad_filter, condition_on_previous_text=message.condition_on_previous_text,
    )
    return Info(
        language=message.language, language_probability=message.language_probability,
        duration=message.duration_seconds, duration_after_vad=message.duration_after_vad_seconds,
        model=message.model, options=options,
        declared_duration=message.declared_duration_seconds or None, truncated=message.truncated,
    )


def _time(start: float, end: float) -> geometry_pb2.TimeRange:
    return geometry_pb2.TimeRange(start_seconds=start, end_seconds=end)


def segment_to_message(segment: Segment) -> pb.Segment:
    return pb.Segment(
        index=segment.index, time=_time(segment.start, segment.end), text=segment.text,
        words=[pb.Word(text=w.text, time=_time(w.start, w.end), probability=w.probability)
               for w in segment.words],
        avg_logprob=segment.avg_logprob, no_speech_probability=segment.no_speech_probability,
        compression_ratio=segment.compression_ratio, temperature=segment.temperature,
    )


def segment_from_message(message: pb.Segment) -> Segment:
    return Segment(
        index=message.index, start=message.time.start_seconds, end=message.time.end_seconds,
        text=message.text,
        words=tuple(Word(w.time.start_seconds, w.time.end_seconds, w.text, w.probability)
                    for w in message.words),
        avg_logprob=message.avg_logprob, no_speech_probability=message.no_speech_probability,
        compression_ratio=message.compression_ratio, temperature=message.temperature,
    )


def summary_to_message(summary: TranscriptionSummary) -> pb.TranscriptionSummary:
    return pb.TranscriptionSummary(
        segment_count=summary.segment_count, processing_seconds=summary.processing_seconds,
        real_time_factor=summary.real_time_factor,
    )


def summary_from_message(message: pb.TranscriptionSummary) -> TranscriptionSummary:
    return TranscriptionSummary(message.segment_count, message.processing_seconds,
                                message.real_time_factor)


def transcript_response(
    info: Info | None, segments: list[Segment], summary: TranscriptionSummary
) -> pb.TranscribeResponse:
    """The unary call's response (and the CLI's `--json` transcript) for a transcription."""
    response = pb.TranscribeResponse(segments=[segment_to_message(s) for s in segments],
                                     summary=summary_to_message(summary))
    if info is not None:
        response.info.CopyFrom(info_to_message(info))
    return response
