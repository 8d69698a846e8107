"""One VisualDL log file per run folder, continued across resumes.

VisualDL's ``LogWriter`` starts a new timestamped file on every start, and its board shows only
the newest file of a folder: after a resume the curves of the first part vanish. The trainer
therefore writes one fixed file, ``<output_dir>/visualdl/vdlrecords.run.log``; a resume first
keeps the records up to the checkpoint's iteration (those after it are run again) and rewrites
them into the new file ahead of everything logged from then on.

File format (VisualDL's ``RecordWriter``): records one after another, each a little-endian uint64
length followed by a serialized ``visualdl.proto.record_pb2.Record``.
"""

import os
import struct
from typing import Any, Iterable, List, Optional

RUN_LOG = "vdlrecords.run.log"
META_TAG = "meta_data_tag"  # LogWriter writes one on every start


def read_records(path: str) -> List[Any]:
    """The ``Record`` protos of a VisualDL log file, in order; a torn last record is dropped."""
    from visualdl.proto import record_pb2

    with open(path, "rb") as handle:
        data = handle.read()
    records, pos = [], 0
    while pos + 8 <= len(data):
        (length,) = struct.unpack_from("<Q", data, pos)
        if pos + 8 + length > len(data):
            break  # a write cut short by a crash
        record = record_pb2.Record()
        record.ParseFromString(data[pos + 8:pos + 8 + length])
        records.append(record)
        pos += 8 + length
    return records


def records_up_to(records: Iterable[Any], last_step: int) -> List[Any]:
    """The records' values with step <= ``last_step`` (meta records dropped), one Record each."""
    from visualdl.proto import record_pb2

    kept = []
    for record in records:
        values = [v for v in record.values if v.tag != META_TAG and v.id <= last_step]
        if values:
            kept.append(record_pb2.Record(values=values))
    return kept


def open_run_log(logdir: str, resume_step: Optional[int] = None) -> Any:
    """A ``LogWriter`` on the run's one log file.

    Args:
        logdir: ``<output_dir>/visualdl``.
        resume_step: the iteration a resume starts from: earlier records are kept; None starts
            the file afresh (a new run in this folder).
    Returns:
        visualdl.LogWriter.
    """
    from visualdl import LogWriter

    path = os.path.join(logdir, RUN_LOG)
    kept = []
    if os.path.isfile(path):
        if resume_step is not None:
            kept = records_up_to(read_records(path), resume_step)
        # LogWriter truncates the file it opens anyway; removing it first spares its notice.
        os.remove(path)
    writer = LogWriter(logdir=logdir, file_name=RUN_LOG)
    file_writer = writer._get_file_writer()  # the writer's own record queue keeps the order
    for record in kept:
        file_writer.add_record(record)
    return writer
