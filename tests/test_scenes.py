"""The generated scenes that the learning figures are measured on say what their images hold: the objects
recorded beside the captions are the ones the captions name, where they are drawn, and the relation
scores read them right."""

from __future__ import annotations

import json

from PIL import Image
from scenes import COLOURS, clear_relations, make_scenes, relation_accuracy, true_relation, truth


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
