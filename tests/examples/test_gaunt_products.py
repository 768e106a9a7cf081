"""The Gaunt tutorial runs, in quick mode, and its checks hold."""
import importlib.util
import pathlib

SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "examples" / "gaunt_products.py"


def test_quick_run():
    spec = importlib.util.spec_from_file_location("gaunt_example", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = module.main(["--quick"])
    assert result["pointwise_error"] < 1e-10
    assert result["tp_error"] < 1e-9 and result["many_body_error"] < 1e-9
    assert "TensorProduct" in result["odd_path_refusal"]
    assert result["gaunt_outputs"] == 25 and result["cg_outputs"] > result["gaunt_outputs"]
