import pandas as pd
import pytest

from auscult import table


def test_empty_table_has_every_column_of_its_stage():
    frame = table.empty("prep")
    assert list(frame.columns) == list(table.STAGE_COLUMNS["prep"])


def test_missing_columns_are_named():
    with pytest.raises(table.TableError, match="sample_rate"):
        table.validate(table.empty("ingest"), "curate")


def test_duplicate_recording_ids_are_rejected():
    frame = pd.concat([table.empty("ingest"), pd.DataFrame({"recording_id": ["a", "a"]})], ignore_index=True)
    with pytest.raises(table.TableError, match="duplicate"):
        table.validate(frame, "ingest")


def test_round_trip_keeps_dtypes_and_extra_columns(tmp_path):
    frame = table.empty("ingest")
    frame.loc[0, "recording_id"] = "abc"
    frame.loc[0, "size_bytes"] = 10
    table.write(frame, tmp_path / "t.parquet", "ingest")
    back = table.read(tmp_path / "t.parquet", "ingest")
    assert back["size_bytes"].dtype == "Int64"
    assert back.loc[0, "recording_id"] == "abc"
    assert back["age_band"].isna().all()


def test_spreadsheet_safe_quotes_text_a_spreadsheet_would_run_and_keeps_numbers():
    frame = pd.DataFrame(
        {
            "text": ["=1+1", "+1", "-x", "@SUM(A1)", "\tb", "\rc", "plain", "a=b", None],
            "number": [-1.5, -2.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        }
    )
    safe = table.spreadsheet_safe(frame)
    assert safe["text"].tolist()[:-1] == ["'=1+1", "'+1", "'-x", "'@SUM(A1)", "'\tb", "'\rc", "plain", "a=b"]
    assert pd.isna(safe["text"].iloc[-1]) and safe["number"].tolist() == frame["number"].tolist()
