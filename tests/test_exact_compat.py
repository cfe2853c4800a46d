"""The EXACT-compatible REST API (docs/exact-compat.md) against a real ``exact serve`` on 127.0.0.1, driven by
the EXACT-Sync client from PyPI (exact-sync 0.0.41, in setup.cfg's test extra) running an unchanged script in
its documented style, and by raw HTTP for what a script must not be able to do."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from exactvc import verification
from exactvc.access import AccessStore
from exactvc.repo import Repository

from .server_fixtures import ServerProcess, add_squares, exact, make_repo, ok, request

N = 2600  # annotations on the big image: several pages of every page size the script uses
PASSWORD = "correct horse battery"

# A script as EXACT-Sync's README writes them: nothing in it knows it talks to exactvc.
SCRIPT = r'''
import json, os, sys

from exact_sync.v1.api.annotation_types_api import AnnotationTypesApi
from exact_sync.v1.api.annotations_api import AnnotationsApi
from exact_sync.v1.api.image_sets_api import ImageSetsApi
from exact_sync.v1.api.images_api import ImagesApi
from exact_sync.v1.api.products_api import ProductsApi
from exact_sync.v1.api.teams_api import TeamsApi
from exact_sync.v1.api.users_api import UsersApi
from exact_sync.v1.api_client import ApiClient
from exact_sync.v1.configuration import Configuration
from exact_sync.v1.models import Annotation, AnnotationType
from exact_sync.v1.rest import ApiException

configuration = Configuration()
configuration.username = os.environ["EXACT_USER"]
configuration.password = os.environ["EXACT_PASSWORD"]
configuration.host = os.environ["EXACT_HOST"]

client = ApiClient(configuration)
image_sets_api = ImageSetsApi(client)
images_api = ImagesApi(client)
annotation_types_api = AnnotationTypesApi(client)
annotations_api = AnnotationsApi(client)
products_api = ProductsApi(client)
teams_api = TeamsApi(client)
users_api = UsersApi(client)

out = {}
image_set = image_sets_api.list_image_sets(name="proj").results[0]
out["image_set"] = {"id": image_set.id, "name": image_set.name, "images": image_set.images, "team": image_set.team}
out["image_sets_contains"] = [s.name for s in image_sets_api.list_image_sets(name__contains="ro").results]
out["image_sets_expanded"] = image_sets_api.list_image_sets(pagination=False, expand="product_set").results[0].product_set
detail = image_sets_api.retrieve_image_set(image_set.id, expand="images")
out["detail_images"] = sorted(i["name"] for i in detail.images)

images = images_api.list_images(image_set=image_set.id, pagination=False).results
image = [i for i in images if i.name == "slide-1"][0]
out["image"] = {"id": image.id, "width": image.width, "height": image.height, "image_set": image.image_set}

product = products_api.list_products(imagesets=image_set.id).results[0]
out["product"] = {"id": product.id, "imagesets": product.imagesets}
types = annotation_types_api.list_annotation_types(product=product.id, pagination=False).results
out["types"] = {t.name: t.vector_type for t in types}
cell = [t for t in types if t.name == "cell"][0]
mitosis = [t for t in types if t.name == "mitosis"][0]

first = annotations_api.list_annotations(image=image.id, limit=1000)
out["first_page"] = {"count": first.count, "n": len(first.results), "next": first.next}
everything = annotations_api.list_annotations(image=image.id, limit=1000, pagination=False)
out["all"] = {"count": everything.count, "n": len(everything.results),
              "unique": len({a.unique_identifier for a in everything.results}),
              "ids": len({a.id for a in everything.results})}
default = annotations_api.list_annotations(image=image.id, pagination=False)
out["all_default"] = len({a.id for a in default.results})
expanded = annotations_api.list_annotations(image=image.id, limit=3, expand="annotation_type,last_editor").results
out["expanded_type"] = expanded[0].annotation_type["name"]
listed = annotations_api.list_annotations(image=image.id, limit=3, expand=["last_editor", "annotation_type"])
out["bracketed_type"] = listed.results[0].annotation_type["vector_type"]
sample = everything.results[0]
out["sample"] = {"vector": sample.vector, "unique_identifier": sample.unique_identifier, "id": sample.id}

one = annotations_api.create_annotation(body=Annotation(
    annotation_type=mitosis.id, image=image.id, vector={"x1": 5000, "y1": 5000},
    description="mitotic figure"))
out["created_one"] = {"id": one.id, "uid": one.unique_identifier, "vector": one.vector,
                      "description": one.description}
batch = annotations_api.create_annotation(body=[
    Annotation(annotation_type=cell.id, image=image.id,
               vector={"x1": 7000 + 20 * i, "y1": 7000, "x2": 7010 + 20 * i, "y2": 7000, "x3": 7010 + 20 * i,
                       "y3": 7010},
               unique_identifier="6f1c2a9e-0000-4000-8000-00000000000%d" % i)
    for i in range(3)])
out["created_batch"] = [a.id for a in batch]
again = annotations_api.create_annotation(body=Annotation(
    annotation_type=cell.id, image=image.id, vector={"x1": 1, "y1": 1, "x2": 11, "y2": 1, "x3": 11, "y3": 11},
    unique_identifier="6f1c2a9e-0000-4000-8000-000000000000"))
out["upserted_same_id"] = again.id == batch[0].id
updated = annotations_api.partial_update_annotation(id=one.id, vector={"x1": 6000, "y1": 6000},
                                                    description="checked")
out["updated"] = {"vector": updated.vector, "description": updated.description}
annotations_api.destroy_annotation(id=sample.id)
try:
    annotations_api.retrieve_annotation(id=sample.id)
    out["deleted_gone"] = False
except ApiException as e:
    out["deleted_gone"] = e.status == 404
after = annotations_api.list_annotations(image=image.id, limit=1)
out["count_after"] = after.count
out["teams"] = [t.name for t in teams_api.list_teams().results]
out["users"] = sorted(u.username for u in users_api.list_users().results)
created_type = annotation_types_api.create_annotation_type(body=AnnotationType(
    name="lymphocyte", vector_type=AnnotationType.VECTOR_TYPE.POINT, product=product.id, color_code="#00FFAA"))
out["created_type"] = {"name": created_type.name, "vector_type": created_type.vector_type}
# as SlideRunner's sync sends it: every field, times in EXACT's format, deleted=False
synced = annotations_api.partial_update_annotation(
    id=batch[1].id, annotation_type=cell.id, last_edit_time="2026-12-01T10:00:00.000000",
    vector={"x1": 100, "y1": 100, "x2": 150, "y2": 100, "x3": 150, "y3": 150, "x4": 100, "y4": 150},
    deleted=False, unique_identifier=batch[1].unique_identifier, description="")
out["synced"] = synced.vector
json.dump(out, sys.stdout)
'''


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("exactroot")
    repo = make_repo(root / "proj")
    add_squares(repo, "slide-1", N)
    repo.commit("many cells")
    make_repo(root / "other", image="elsewhere")
    ver = make_repo(root / "ver", image="checked")
    vids = add_squares(ver, "checked", 3)
    ver.commit("three cells")
    verification.verify(ver, "checked", vids[0], True, author="vera <vera@x>")
    verification.verify(ver, "checked", vids[1], True, author="bob <bob@x>")
    verification.verify(ver, "checked", vids[2], False, author="bob <bob@x>")
    acc = AccessStore(root)
    tok = {name: acc.add_user(name) for name in ("ada", "rita", "out", "vera")}
    acc.grant("proj", "ada", "annotate")
    acc.grant("proj", "rita", "read")
    acc.grant("other", "ada", "read")
    acc.grant("ver", "vera", "read")
    for name in tok:
        acc.set_password(name, PASSWORD)
    srv = ServerProcess(root, tmp_path_factory.mktemp("log") / "serve.log")
    try:
        yield {"root": root, "srv": srv, "tok": tok, "verified": vids}
    finally:
        srv.stop()


def _basic(user: str, secret: str = PASSWORD) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()}


def _slide(world: dict[str, Any]) -> int:
    """The id of the big image (slide-1) of proj."""
    found = _get(world, "/api/v1/images/images/?name=slide-1&omit=annotations")["results"]
    return int([i for i in found if i["image_set"] == _get(world, "/api/v1/images/image_sets/?name=proj")[
        "results"][0]["id"]][0]["id"])


def _get(world: dict[str, Any], path: str, user: str | None = "ada") -> Any:
    rep = request("GET", world["srv"].url + path, headers=_basic(user) if user else None)
    assert rep.status == 200, (path, rep.status, rep.body[:300])
    return rep.json()


def test_an_unchanged_exact_sync_script_works_against_exact_serve(world: dict[str, Any], tmp_path: Path) -> None:
    script = tmp_path / "sync.py"
    script.write_text(SCRIPT)
    env = {"EXACT_USER": "ada", "EXACT_PASSWORD": PASSWORD, "EXACT_HOST": world["srv"].url, "PATH": "/usr/bin:/bin"}
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout)
    assert out["image_set"]["name"] == "proj" and len(out["image_set"]["images"]) == 1
    assert out["image_sets_contains"] == ["proj"]  # "other" is readable too but does not contain "ro"
    assert out["image_sets_expanded"][0]["name"] == "default"
    assert out["detail_images"] == ["slide-1"]
    assert out["image"]["width"] == out["image"]["height"] == 200000
    assert out["image"]["image_set"] == out["image_set"]["id"] and out["image"]["id"] in out["image_set"]["images"]
    assert out["product"]["imagesets"] == [out["image_set"]["id"]]
    assert out["types"] == {"cell": 5, "mitosis": 2}
    first = out["first_page"]
    assert first["count"] == N and first["n"] == 1000
    assert "limit=1000" in first["next"] and "offset=1000" in first["next"]
    assert out["all"] == {"count": N, "n": N, "unique": N, "ids": N}
    assert out["all_default"] == N
    assert out["expanded_type"] == "cell" and out["bracketed_type"] == 5
    # a 10x10 square of make_repo, as EXACT's polygon vector
    vec = out["sample"]["vector"]
    assert sorted(k for k in vec) == ["x1", "x2", "x3", "x4", "y1", "y2", "y3", "y4"]
    assert max(vec[f"x{i}"] for i in range(1, 5)) - min(vec[f"x{i}"] for i in range(1, 5)) == 10
    one = out["created_one"]
    assert one["vector"] == {"x1": 4975, "y1": 4975, "x2": 5025, "y2": 5025}  # mitosis markers are 50x50
    assert one["description"] == "mitotic figure" and len(one["uid"]) == 36
    assert len(set(out["created_batch"])) == 3 and out["upserted_same_id"] is True
    assert out["updated"] == {"vector": {"x1": 5975, "y1": 5975, "x2": 6025, "y2": 6025}, "description": "checked"}
    assert out["deleted_gone"] is True
    assert out["count_after"] == N + 1 + 3 - 1
    assert out["teams"] == ["other", "proj"] and out["users"] == ["ada", "out", "rita", "vera"]
    assert out["created_type"] == {"name": "lymphocyte", "vector_type": 2}
    assert out["synced"] == {"x1": 100, "y1": 100, "x2": 150, "y2": 100, "x3": 150, "y3": 150, "x4": 100, "y4": 150}

    # the changes are commits on ada's working branch, one per request; main is untouched
    proj = world["root"] / "proj"
    log = json.loads(ok(exact("-C", str(proj), "log", "users/ada/edits", "--json")))
    entries = log["exactvc.log/v1"]
    messages = [e["message"] for e in entries]
    assert messages[:7] == ["EXACT API: update annotation 6f1c2a9e-0000-4000-8000-000000000001",
                            "EXACT API: add annotation type lymphocyte", "EXACT API: delete 1 annotation",
                            "EXACT API: update annotation " + one["uid"], "EXACT API: 1 annotation change",
                            "EXACT API: 3 annotation changes", "EXACT API: 1 annotation change"], messages
    assert all(e["author"].startswith("ada") for e in entries[:7])
    repo = Repository.open(proj)
    assert repo.refs.read("heads/main") == repo.resolve("users/ada/edits~7")
    mine = {a.id: a for a in repo.annotations("slide-1", "users/ada/edits")}
    assert len(mine) == N + 3 and mine[one["uid"]].properties == {"description": "checked"}
    assert out["sample"]["unique_identifier"] not in mine
    assert mine["6f1c2a9e-0000-4000-8000-000000000000"].bounds == (1, 1, 11, 11)  # the upsert replaced it
    assert len(list(repo.annotations("slide-1", "main"))) == N


def test_ids_are_stable_and_reads_follow_the_read_branch(world: dict[str, Any]) -> None:
    a = _get(world, "/api/v1/images/image_sets/?name=proj")["results"][0]
    b = _get(world, f"/api/v1/images/image_sets/{a['id']}/")
    assert a["id"] == b["id"] and a["images"] == b["images"]
    assert _get(world, f"/api/v1/images/image_sets/{a['id']}")["id"] == a["id"]  # the trailing slash is optional
    # rita reads main (no working branch of her own); the ids are the same for everyone
    page = _get(world, f"/api/v1/annotations/annotations/?image={_slide(world)}&limit=2&offset=4", "rita")
    again = _get(world, f"/api/v1/annotations/annotations/?image={_slide(world)}&limit=2&offset=4", "rita")
    assert page == again and page["count"] == N
    assert "limit=2" in page["next"] and "offset=6" in page["next"] and "offset=2" in page["previous"]
    one = _get(world, f"/api/v1/annotations/annotations/{page['results'][0]['id']}/", "rita")
    assert one["unique_identifier"] == page["results"][0]["unique_identifier"]
    filtered = _get(world, "/api/v1/annotations/annotations/?unique_identifier="
                    + page["results"][1]["unique_identifier"], "rita")
    assert filtered["count"] == 1 and filtered["results"][0]["id"] == page["results"][1]["id"]
    assert _get(world, f"/api/v1/annotations/annotations/?image={_slide(world)}&deleted=true", "rita")["count"] == 0
    fields = _get(world, f"/api/v1/annotations/annotations/?image={_slide(world)}&limit=1"
                  "&fields=id,annotation_type&expand=annotation_type&omit=annotation_type.product", "rita")
    assert set(fields["results"][0]) == {"id", "annotation_type"}
    assert "product" not in fields["results"][0]["annotation_type"]
    # nothing of a repository the caller cannot read, and its ids answer 404 as missing ones do
    other = _get(world, "/api/v1/images/image_sets/?name=other")["results"][0]
    assert _get(world, "/api/v1/images/image_sets/", "rita")["count"] == 1
    hidden = request("GET", world["srv"].url + f"/api/v1/images/image_sets/{other['id']}/", headers=_basic("rita"))
    missing = request("GET", world["srv"].url + "/api/v1/images/image_sets/999999/", headers=_basic("rita"))
    assert hidden.status == missing.status == 404 and hidden.error()["type"] == "not_found"


def test_verification_flags_come_from_the_recorded_verifications(world: dict[str, Any]) -> None:
    """``verified_by_user``: the caller verified it (yes or no); ``is_verified``: someone said yes."""
    img = _get(world, "/api/v1/images/images/?name=checked&omit=annotations", "vera")["results"][0]["id"]
    got = {a["unique_identifier"]: (a["verified_by_user"], a["is_verified"])
           for a in _get(world, f"/api/v1/annotations/annotations/?image={img}", "vera")["results"]}
    first, second, third = world["verified"]
    assert got == {first: (True, True), second: (False, True), third: (False, False)}


def test_read_only_users_and_strangers_are_refused(world: dict[str, Any]) -> None:
    url = world["srv"].url
    s = _get(world, "/api/v1/images/image_sets/?name=proj")["results"][0]
    types = _get(world, f"/api/v1/annotations/annotation_types/?name=cell&product={s['product_set'][0]}")["results"]
    ann = _get(world, f"/api/v1/annotations/annotations/?image={s['images'][0]}&limit=1")["results"][0]
    body = {"image": _slide(world), "annotation_type": types[0]["id"],
            "vector": {"x1": 1, "y1": 1, "x2": 5, "y2": 1, "x3": 5, "y3": 5}}
    before = Repository.open(world["root"] / "proj").refs.list()
    for method, path, data in (("POST", "/api/v1/annotations/annotations/", body),
                               ("PATCH", f"/api/v1/annotations/annotations/{ann['id']}/", {"description": "x"}),
                               ("DELETE", f"/api/v1/annotations/annotations/{ann['id']}/", None),
                               ("DELETE", f"/api/v1/annotations/annotations/multiple_delete/?id__in={ann['id']}", None),
                               ("POST", "/api/v1/annotations/annotation_types/",
                                {"name": "x", "vector_type": 5, "product": s["product_set"][0]})):
        rep = request(method, url + path, data, headers=_basic("rita"))
        assert rep.status == 403 and rep.error()["type"] == "forbidden", (method, path, rep.body)
        rep = request(method, url + path, data, headers=_basic("out"))
        assert rep.status == 404, (method, path, rep.body)
        rep = request(method, url + path, data)
        assert rep.status == 401, (method, path, rep.body)
    assert Repository.open(world["root"] / "proj").refs.list() == before
    # Bearer tokens and NAME:TOKEN in Basic work; a wrong password is 401 unauthorized
    assert request("GET", url + "/api/v1/users/users/", token=world["tok"]["rita"]).status == 200
    assert request("GET", url + "/api/v1/users/users/", headers=_basic("rita", world["tok"]["rita"])).status == 200
    assert request("GET", url + "/api/v1/users/users/", headers=_basic("ada", world["tok"]["rita"])).status == 401
    bad = request("GET", url + "/api/v1/users/users/", headers=_basic("rita", "wrong password!"))
    assert bad.status == 401 and bad.error()["type"] == "unauthorized"


@pytest.mark.parametrize("body, kind", [
    (b"\xff{not json", "invalid_input"),
    ({"image": "x", "annotation_type": 1, "vector": {}}, "invalid_input"),
    ([], "invalid_input"),
    ([1, 2], "invalid_input"),
    ({"annotation_type": "TYPE", "image": "IMAGE", "vector": {"x1": 1}}, "invalid_geometry"),
    ({"annotation_type": "TYPE", "image": "IMAGE", "vector": {"x1": 1, "y1": "a"}}, "invalid_geometry"),
    ({"annotation_type": "TYPE", "image": "IMAGE", "vector": [1, 2]}, "invalid_geometry"),
    ({"annotation_type": "TYPE", "image": "IMAGE", "vector": {"x1": -5, "y1": -5, "x2": 5, "y2": -5, "x3": 5,
                                                             "y3": 5}}, "invalid_geometry"),
    ({"annotation_type": "TYPE", "image": "IMAGE", "vector": {"x1": 1, "y1": 1, "x2": 2, "y2": 2, "x3": 3,
                                                             "y3": 3}, "unique_identifier": "nope"}, "invalid_input"),
    ({"annotation_type": 999999, "image": "IMAGE", "vector": {"x1": 1, "y1": 1}}, "not_found"),
    ({"annotation_type": "TYPE", "image": "IMAGE"}, "invalid_input"),
])
def test_bad_input_is_a_json_4xx_and_changes_nothing(world: dict[str, Any], body: Any, kind: str) -> None:
    s = _get(world, "/api/v1/images/image_sets/?name=proj")["results"][0]
    cell = _get(world, f"/api/v1/annotations/annotation_types/?name=cell&product={s['product_set'][0]}")["results"][0]
    if isinstance(body, dict):
        body = {k: (cell["id"] if v == "TYPE" else _slide(world) if v == "IMAGE" else v) for k, v in body.items()}
    before = Repository.open(world["root"] / "proj").refs.list()
    rep = request("POST", world["srv"].url + "/api/v1/annotations/annotations/", body, headers=_basic("ada"))
    assert 400 <= rep.status < 500 and rep.error()["type"] == kind, (body, rep.status, rep.body)
    assert Repository.open(world["root"] / "proj").refs.list() == before


@pytest.mark.parametrize("path", [
    "/api/v1/images/image_sets/abc/", "/api/v1/images/image_sets/?id__in=1,x", "/api/v1/images/images/?limit=-1",
    "/api/v1/annotations/annotations/?limit=1_0", "/api/v1/annotations/annotations/?offset=%EF%BC%91",
    "/api/v1/annotations/annotations/?deleted=maybe", "/api/v1/annotations/annotations/?image=1e3",
    "/api/v1/annotations/annotations/99999999/", "/images/api/image/download/99999999/",
    "/api/v1/annotations/annotation_types/?limit=999999"])
def test_bad_queries_are_json_4xx(world: dict[str, Any], path: str) -> None:
    rep = request("GET", world["srv"].url + path, headers=_basic("ada"))
    assert 400 <= rep.status < 500, (path, rep.status, rep.body)
    assert rep.error()["type"] in ("invalid_input", "not_found")


def test_annotation_types_map_vector_types_and_upload_and_download(world: dict[str, Any]) -> None:
    url = world["srv"].url
    s = _get(world, "/api/v1/images/image_sets/?name=proj")["results"][0]
    for vt, name in ((1, "boxes"), (4, "tracks"), (5, "regions")):
        rep = request("POST", url + "/api/v1/annotations/annotation_types/",
                      {"name": name, "vector_type": vt, "product": s["product_set"][0]}, headers=_basic("ada"))
        assert rep.status == 201 and rep.json()["vector_type"] == vt, rep.body
    dup = request("POST", url + "/api/v1/annotations/annotation_types/",
                  {"name": "boxes", "vector_type": 1, "product": s["product_set"][0]}, headers=_basic("ada"))
    assert dup.status == 409 and dup.error()["type"] == "already_exists"
    rep = request("POST", url + "/api/v1/annotations/annotation_types/",
                  {"name": "whole", "vector_type": 7, "product": s["product_set"][0]}, headers=_basic("ada"))
    assert rep.status == 422
    shapes = {lb.name: lb.shape for lb in Repository.open(world["root"] / "proj").labels("users/ada/edits").labels}
    assert shapes["boxes"] == "box" and shapes["tracks"] == "line" and shapes["regions"] == "polygon"
    boxes = _get(world, f"/api/v1/annotations/annotation_types/?name=boxes&product={s['product_set'][0]}")["results"][0]
    rep = request("POST", url + "/api/v1/annotations/annotations/",
                  {"image": _slide(world), "annotation_type": boxes["id"],
                   "vector": {"x1": 300, "y1": 400, "x2": 100, "y2": 200, "frame": 1}}, headers=_basic("ada"))
    assert rep.status == 201 and rep.json()["vector"] == {"x1": 100, "y1": 200, "x2": 300, "y2": 400}, rep.body

    # upload a real slide with the client's multipart form, then fetch it back from the legacy URL
    slide = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "cmu_small_region.svs"
    if not slide.exists():
        slide = Path("/work/shared/data/cmu_small_region.svs")
    if not slide.exists():
        pytest.skip("the shared slide is not here")
    import requests
    from requests_toolbelt.multipart.encoder import MultipartEncoder

    with open(slide, "rb") as f:
        m = MultipartEncoder(fields={"file_path": ("cmu.svs", f, "application/octet-stream"), "image_type": "0",
                                     "image_set": str(s["id"])})
        r = requests.post(url + "/api/v1/images/images/", data=m,
                          headers={**_basic("ada"), "Content-Type": m.content_type}, timeout=120)
    assert r.status_code == 201, r.text
    img = r.json()["results"][0]
    assert img["name"] == "cmu.svs" and img["width"] == 2220 and img["height"] == 2967
    got = requests.get(url + f"/images/api/image/download/{img['id']}/", headers=_basic("ada"), timeout=60)
    assert got.status_code == 200 and len(got.content) > 100000
    assert requests.get(url + f"/images/api/image/download/{img['id']}/", headers=_basic("out"),
                        timeout=60).status_code == 404


def test_settings_choose_the_read_branch(world: dict[str, Any]) -> None:
    url = world["srv"].url
    root = world["root"]
    acc = AccessStore(root)
    acc.add_user("boss")
    acc.grant("other", "boss", "admin")
    acc.set_password("boss", PASSWORD)
    ok(exact("-C", str(root / "other"), "switch", "-c", "review"))
    other = Repository.open(root / "other")
    add_squares(other, "elsewhere", 7)
    other.commit("seven", author="Test <test@example.org>")
    s = _get(world, "/api/v1/images/image_sets/?name=other", "boss")["results"][0]
    assert _get(world, f"/api/v1/annotations/annotations/?image={s['images'][0]}", "boss")["count"] == 0
    rep = request("PUT", url + "/api/v1/repos/other/exact-compat", {"read_branch": "heads/x"}, headers=_basic("boss"))
    assert rep.status == 422
    rep = request("PUT", url + "/api/v1/repos/other/exact-compat", {"read_branch": "review"}, headers=_basic("ada"))
    assert rep.status == 403
    rep = request("PUT", url + "/api/v1/repos/other/exact-compat", {"read_branch": "review"}, headers=_basic("boss"))
    assert rep.status == 200 and rep.json() == {"read_branch": "review"}
    s = _get(world, "/api/v1/images/image_sets/?name=other", "boss")["results"][0]
    assert _get(world, f"/api/v1/annotations/annotations/?image={s['images'][0]}", "boss")["count"] == 7


def test_parallel_writes_of_one_user_become_consecutive_commits(world: dict[str, Any]) -> None:
    from concurrent.futures import ThreadPoolExecutor

    s = _get(world, "/api/v1/images/image_sets/?name=proj")["results"][0]
    mitosis = _get(world, f"/api/v1/annotations/annotation_types/?name=mitosis&product={s['product_set'][0]}")

    def create(i: int) -> int:
        body = {"image": _slide(world), "annotation_type": mitosis["results"][0]["id"],
                "vector": {"x1": 90000 + i, "y1": 90000}}
        rep = request("POST", world["srv"].url + "/api/v1/annotations/annotations/", body, headers=_basic("ada"))
        assert rep.status == 201, rep.body
        return rep.status

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(create, range(8)))
    assert statuses == [201] * 8
    log = json.loads(ok(exact("-C", str(world["root"] / "proj"), "log", "users/ada/edits", "-n", "8", "--json")))
    assert [e["message"] for e in log["exactvc.log/v1"]] == ["EXACT API: 1 annotation change"] * 8
    xs = {a.geojson["coordinates"][0] for a in Repository.open(world["root"] / "proj").annotations(
        "slide-1", "users/ada/edits") if a.label == "mitosis"}
    assert {90000 + i for i in range(8)} <= xs
