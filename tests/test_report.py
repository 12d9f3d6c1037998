"""The offline quality report: rendered from a Jinja2 template that escapes what rows carry."""

from tasks.report import _TEMPLATES, _histogram


def test_the_page_escapes_ids_reasons_and_names():
    hostile = '"><script>alert(1)</script>'
    summary = {"release_id": f"r{hostile}", "status": "published", "created_at": "now",
               "counts": {"input": 2, "published": 1, "quarantined": 1, "flagged": 0},
               "validation": {f"suite{hostile}": {"success": False, "failed": [f"expect{hostile}"]}},
               "quarantine_reasons": {f"read: {hostile}": 1}}
    sections = [{"metric": "texture_ratio", "meaning": "smudges", "cards": [
        {"image_id": f"img{hostile}", "value": 0.2, "status": f"published{hostile}",
         "thumbnails": ("thumbs/00000-before.jpg", "thumbs/00000-after.jpg")}]}]
    page = _TEMPLATES.get_template("report.html.j2").render(
        summary=summary, histograms=[_histogram([0.5, 1.0, 1.5], "texture_ratio"), _histogram([], "ghost_score")],
        sections=sections)
    assert "<script>" not in page
    # The release id (title and heading), suite, expectation, reason, image id and status.
    assert page.count("&lt;script&gt;alert(1)&lt;/script&gt;") == 7
    assert 'src="thumbs/00000-before.jpg"' in page and "<svg" in page and "no values" in page
