"""The generated scenes that the learning figures are measured on say what their images hold: the objects
recorded beside the captions are the ones the captions name, where they are drawn, and the relation
scores read them right."""

from __future__ import annotations

import json

from PIL import Image
from scenes import (
    COLOURS,
    clear_relations,
    make_scenes,
    relation_accuracy,
    relation_holds,
    true_relation,
    truth,
)


def test_recorded_objects_match_captions_pixels_and_clear_relations(tmp_path) -> None:
    path = make_scenes(tmp_path, n_train=80, n_val=0, n_test=0, size=64, seed=5, relations=True)
    images = json.loads(path.read_text())["images"]
    clear = clear_relations(path)
    two = [i for i in images if len(i["objects"]) == 2]
    assert 0 < len(clear) < len(two)  # some two-object scenes are ambiguous, most are not
    for image in images:
        references = [s["raw"] for s in image["sentences"]]
        objects = image["objects"]
        assert {(o["colour"], o["shape"]) for o in objects} == truth(references)
        pixels = Image.open(tmp_path / "images" / image["filename"]).convert("RGB")
        top = objects[-1]  # drawn last, so nothing covers its centre
        centre = pixels.getpixel((int(top["x"] * 64), int(top["y"] * 64)))
        assert max(abs(a - b) for a, b in zip(centre, COLOURS[top["colour"]], strict=True)) <= 20
        if len(objects) != 2:
            continue
        first, relation, second = true_relation(references)
        lead, other = objects  # the generator puts object 0 in the first half: left, or above
        assert (first, second) == ((lead["colour"], lead["shape"]), (other["colour"], other["shape"]))
        axis = "x" if relation == "left of" else "y"
        assert lead[axis] < other[axis]
        dx, dy = (abs(objects[0][k] - objects[1][k]) for k in ("x", "y"))
        assert (str(image["imgid"]) in clear) == ((dx >= dy) if axis == "x" else (dy >= dx))
        # Every reference's relation holds in the picture, from whichever object it is worded.
        assert all(relation_holds(r, objects) is not False for r in references)
        assert sum(relation_holds(r, objects) is True for r in references) >= 2

    # A caption stating the other axis is wrong by the references however clear the scene.
    key = next(iter(clear))
    image = next(i for i in images if str(i["imgid"]) == key)
    references = [s["raw"] for s in image["sentences"]]
    first, relation, second = true_relation(references)
    other = "above" if relation == "left of" else "to the left of"
    wrong = f"a {first[0]} {first[1]} {other} a {second[0]} {second[1]}."
    converse = "below" if relation == "above" else "to the right of"
    right = f"a {second[0]} {second[1]} {converse} a {first[0]} {first[1]}."
    assert relation_accuracy({key: wrong}, {key: references}) == (0.0, 1)
    assert relation_accuracy({key: right}, {key: references}) == (1.0, 1)


def test_relation_holds_reads_the_picture_not_the_wording() -> None:
    red, blue = {"colour": "red", "shape": "circle"}, {"colour": "blue", "shape": "square"}
    objects = [{**red, "x": 0.2, "y": 0.3, "r": 0.1}, {**blue, "x": 0.6, "y": 0.8, "r": 0.1}]
    # The circle is both left of and above the square: either axis holds, from either object.
    assert relation_holds("a red circle to the left of a blue square.", objects) is True
    assert relation_holds("the picture shows a blue square below a red circle.", objects) is True
    assert relation_holds("a red circle above a blue square.", objects) is True
    assert relation_holds("a red circle below a blue square.", objects) is False
    assert relation_holds("a blue square to the left of a red circle.", objects) is False
    assert relation_holds("a green circle above a blue square.", objects) is False  # not in the picture
    assert relation_holds("a red circle and a blue square.", objects) is None
