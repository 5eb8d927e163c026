"""Render a kustomize overlay offline (no kustomize binary here), for scripts/validate-deploy.sh.

Usage: render-overlay.py OVERLAY_DIR [> rendered.yaml]

Implements exactly the part of kustomize the overlays in deploy/kubernetes/overlays use, with
kustomize's meaning: `resources` (files, or folders holding a kustomization.yaml, recursively),
`namespace`, `images` (newName/newTag for containers whose image is `name`), `labels` (pairs added
to every object's metadata.labels, without selectors) and `patches` given inline as JSON 6902
operations with a `target` of kind and name. Any other field stops the script with its name, so
an overlay never silently means more than was validated; a patch whose path does not exist
fails, as it does in kustomize.
"""

import io
import sys
from pathlib import Path

import jsonpatch
from ruamel.yaml import YAML

SUPPORTED = {"apiVersion", "kind", "resources", "namespace", "images", "labels", "patches"}

yaml = YAML(typ="safe")


def load(folder):
    folder = Path(folder)
    kustomization = yaml.load((folder / "kustomization.yaml").read_text())
    unknown = set(kustomization) - SUPPORTED
    if unknown:
        sys.exit(f"{folder}/kustomization.yaml: {', '.join(sorted(unknown))} is not supported "
                 "by scripts/render-overlay.py; extend it or use kustomize")
    objects = []
    for resource in kustomization.get("resources", []):
        path = folder / resource
        if path.is_dir():
            objects.extend(load(path))
        else:
            objects.extend(o for o in yaml.load_all(path.read_text()) if o)
    for image in kustomization.get("images", []):
        if not [obj for obj in objects if set_image(obj, image)]:
            sys.exit(f"{folder}: the image {image['name']} matches no container (kustomize would "
                     "ignore it silently; an overlay that names the base's image must use the "
                     "name the base gave it)")
    for obj in objects:
        if "namespace" in kustomization and obj.get("kind") != "Namespace":
            obj.setdefault("metadata", {})["namespace"] = kustomization["namespace"]
        for label in kustomization.get("labels", []):
            obj.setdefault("metadata", {}).setdefault("labels", {}).update(label["pairs"])
    for patch in kustomization.get("patches", []):
        apply_patch(folder, objects, patch)
    return objects


def set_image(obj, image):
    """Rename/retag the containers running `image`; whether any did."""
    spec = obj.get("spec", {}).get("template", {}).get("spec", {})
    found = False
    for container in spec.get("containers", []) + spec.get("initContainers", []):
        name = container.get("image", "").split(":")[0]
        if name == image["name"]:
            new = image.get("newName", name)
            container["image"] = f"{new}:{image['newTag']}" if "newTag" in image else new
            found = True
    return found


def apply_patch(folder, objects, patch):
    target = patch.get("target", {})
    if set(patch) != {"target", "patch"} or set(target) - {"kind", "name"}:
        sys.exit(f"{folder}: only inline JSON 6902 patches with a kind/name target are supported")
    matches = [o for o in objects
               if o.get("kind") == target.get("kind")
               and o.get("metadata", {}).get("name") == target.get("name")]
    if not matches:
        sys.exit(f"{folder}: no {target.get('kind')} named {target.get('name')} to patch")
    operations = yaml.load(patch["patch"])
    for obj in matches:
        try:
            patched = jsonpatch.apply_patch(obj, operations)
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as e:
            sys.exit(f"{folder}: patch of {target['kind']}/{target['name']} failed: {e}")
        obj.clear()
        obj.update(patched)


def main():
    objects = load(sys.argv[1])
    out = io.StringIO()
    dumper = YAML()
    dumper.explicit_start = True
    dumper.width = 4096
    dumper.dump_all(objects, out)
    sys.stdout.write(out.getvalue())


main()
