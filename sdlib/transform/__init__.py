"""Writing new model files from existing ones: ``convert`` (pickle checkpoints to
safetensors, never running pickle code; fp16/bf16 casts; EMA pruning) and ``merge``
(weighted sum and add difference, tensor by tensor).

Tensors are read with numpy straight from the files' storages, a chunk at a time; torch is
never needed. Outputs are written beside their target and take their name only when whole
and checked. Front ends reach this through :mod:`sdlib.services.transform`.
"""
