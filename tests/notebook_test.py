"""notebooks/quickstart.ipynb: committed without outputs, and runs top to bottom."""

import os

import nbclient
import nbformat

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOK = os.path.join(ROOT, "notebooks", "quickstart.ipynb")


def _code_cells(notebook):
    return [c for c in notebook.cells if c.cell_type == "code"]


def test_committed_notebook_has_no_outputs():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    assert _code_cells(notebook)
    for cell in _code_cells(notebook):
        assert cell.outputs == [], cell.source.splitlines()[0]
        assert cell.execution_count is None, cell.source.splitlines()[0]


def test_notebook_runs_top_to_bottom():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    # The interpreter running the tests (jupyter_client starts "python3" with
    # it), in notebooks/ as a user opening the notebook there; a failing cell
    # raises CellExecutionError with its traceback.
    nbclient.NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": os.path.dirname(NOTEBOOK)}},
    ).execute()
    outputs = [o for cell in _code_cells(notebook) for o in cell.outputs]
    text = "".join(o.text for o in outputs if o.output_type == "stream")
    # This checkout's package, not another installed copy.
    assert f"subscale from {os.path.join(ROOT, 'subscale')}\n" in text
    assert "'temperature': 0.6" in text
    assert "lengths [96, 48, 24] frames -> samples (3, 19200)" in text
    shown = [
        mime for o in outputs if o.output_type == "display_data" for mime in o.data
    ]
    # Players: the clip, its vocoded copy, the three utterances of the batch;
    # figures: the spectrograms and the folding.
    assert shown.count("text/html") == 5
    assert shown.count("image/png") == 2
