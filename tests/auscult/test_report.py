from auscult import report


def test_figures_are_shown_as_a_reader_expects():
    html = report.table(["figure"], [[89.0], [3.58e-07], [0.76], [None], ["text"]])
    assert "<td>89</td>" in html and "<td>3.58e-07</td>" in html and "<td>0.760</td>" in html
    assert "<td></td>" in html and "<td>text</td>" in html
