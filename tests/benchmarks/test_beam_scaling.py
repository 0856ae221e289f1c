"""benchmarks/beam_scaling.py at toy size (proposals on 2 images, in-process and 2 worker processes), its
line fit and table; the portable configurations are run by tests/beam/test_portable.py's path."""

import json

import pytest

import beam_scaling


def test_fit_line_separates_startup_from_per_image_cost():
    startup, per_image = beam_scaling.fit_line(8, 32, 3000.0 + 8 * 50.0, 3000.0 + 32 * 50.0)
    assert startup == pytest.approx(3000.0) and per_image == pytest.approx(50.0)


@pytest.mark.slow  # ~15 s alone, minutes on a loaded machine (worker processes start per run)
def test_proposals_in_process_and_two_workers_write_the_json(tmp_path):
    out = tmp_path / "beam_scaling.json"
    beam_scaling.main(["--sizes", "2", "--rounds", "1", "--pipelines", "proposals",
                       "--configs", "multi_processing_2", "--output", str(out)])
    result = json.loads(out.read_text())
    assert result["settings"]["sizes"] == [2] and result["settings"]["pipelines"] == ["proposals"]
    rows = result["rows"]["proposals"]
    assert set(rows) == {"in_process", "multi_processing_2"}  # the baseline is always measured
    assert rows["in_process"]["speedup_vs_in_process"]["2"] == 1.0
    for row in rows.values():
        assert row["seconds"]["2"] > 0 and row["images_per_second"]["2"] > 0
        assert "startup_ms" not in row  # one size: no line fit
    assert set(result["timing"]["ms"]) == {"proposals/in_process/2", "proposals/multi_processing_2/2"}
    assert result["timing"]["timed_runs"] == 1 and result["machine"]["cpus"] >= 1
    text = beam_scaling.table(result)
    assert text.splitlines()[0].startswith("| pipeline | runner | 2 images (s) |")
    assert "| proposals | multi_processing_2 |" in text


def test_table_with_two_sizes_and_portable_worker_counts():
    row = {"seconds": {"8": 4.0, "32": 5.2}, "speedup_vs_in_process": {"32": 0.5}, "startup_ms": 3600.0,
           "per_image_ms": 50.0, "per_image_speedup_vs_in_process": 1.1, "worker_processes_per_run": {"32": [1]}}
    result = {"settings": {"sizes": [8, 32]}, "rows": {"predict": {"portable_1": row}}}
    assert beam_scaling.table(result).splitlines()[-1] == (
        "| predict | portable_1 (1 SDK worker) | 4.00 | 5.20 | 0.50× | 3.60 | 50.0 | 1.10× |")


def test_report_renders_the_beam_section_and_bench_finds_the_script():
    import report
    from keras_det.cli import main

    row = {"seconds": {"8": 4.0, "32": 5.2}, "speedup_vs_in_process": {"32": 1.0}}
    beam = {"settings": {"sizes": [8, 32], "rounds": 3, "image_size": 128}, "machine": {"cpu": "AMD EPYC", "cpus": 2},
            "load_average_1min": {"start": 3.0, "end": 4.0}, "timing": {"cpu_steal_percent": 1.0},
            "note": "busy machine", "rows": {"predict": {"in_process": row}}}
    text = report.render(None, None, beam=beam)
    assert "## Beam pipelines: in-process, worker processes, portable runner" in text
    assert "| predict | in_process | 4.00 | 5.20 | 1.00× | — | — | — |" in text
    assert "one SDK worker process per job" in text and "- busy machine" in text and "AMD EPYC, 2 cores" in text
    assert "`beam_scaling.py`" in report.render(None, None)  # listed with the other scripts
    assert main(["bench", "beam_scaling", "--help"]) == 0
