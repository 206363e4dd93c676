"""One model store that several webUIs share.

A store is a folder of kind folders named as Stability Matrix names its shared ``Models``
tree (``StableDiffusion``, ``Lora``, ``VAE``...), so an existing Stability Matrix ``Models``
folder can be adopted as it is. Linking makes one webUI see the store, the way reference
shared-store.md's strategy matrix says for that UI and that filesystem:

- ComfyUI: its own delimited section of ``extra_model_paths.yaml`` (``comfy_section``);
- A1111 / Forge / reForge: a sub-folder link inside each model folder
  (``models/Lora/sdlib-store -> STORE/Lora``), never replacing the UI's own (git-tracked)
  folder;
- SD.Next: its ``config.json`` folder keys (``sdnext_config``), or sub-folder links.

Pure planning (``folders``, ``plan``, ``comfy_section``, ``sdnext_config``) is apart from the
IO (``probe`` tries what a directory supports; ``links`` makes and removes links without ever
following one; ``record`` keeps every link and config edit so that unlinking removes exactly
those; ``apply`` does and undoes a plan). This package knows no webUI scanner: the service
layer (``sdlib.services.store``) checks a written YAML with the library's own reader.
"""
