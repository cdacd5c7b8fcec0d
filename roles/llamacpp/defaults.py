"""Public interface of the llamacpp role: every key, its default, one comment each."""

DEFAULTS = {
    # Pinned llama.cpp release: its tag, the archive URL ({version} is filled in) and the
    # archive's SHA-256. b11312 is commit 0c1e570, the tree llama-cpp-python 0.3.36 vendors
    # (what the sandbox builds). Its Linux x64 archives: ubuntu-x64 (CPU), ubuntu-vulkan-x64,
    # ubuntu-cuda-12.8-x64 and ubuntu-cuda-13.4-x64 (+ cudart-… runtime archives); docs/engines.md.
    "llamacpp_version": "b11312",
    "llamacpp_download_url": (
        "https://github.com/ggml-org/llama.cpp/releases/download/{version}/"
        "llama-{version}-bin-ubuntu-vulkan-x64.tar.gz"
    ),
    "llamacpp_sha256": "81b207361c95483e861763944cd371f916964a9d5626d649919690e6860e744a",
    # More archives unpacked into the same directory, as [url, sha256] pairs ({version} filled
    # in), e.g. the cudart-llama-… CUDA runtime next to a ubuntu-cuda-… archive.
    "llamacpp_extra_downloads": [],
    # Debian packages the binaries load: OpenMP, the Vulkan loader, OpenSSL.
    "llamacpp_packages": ["libgomp1", "libvulkan1", "libssl3"],
    # Each release unpacks to <prefix>/<version>/ (llama-server and its libggml-*.so).
    "llamacpp_prefix": "/opt/llama.cpp",
    # Dedicated service user and its home.
    "llamacpp_user": "llama",
    "llamacpp_home": "/var/lib/llama-server",
    # Listen address; keep it on loopback (reach it through the SSH tunnel or the proxy).
    "llamacpp_bind": "127.0.0.1",
    "llamacpp_port": 8080,
    # The model: a GGUF URL (downloaded once) or an absolute path on the host, its SHA-256
    # (required) and the name the server answers to (/v1/models, "model" in requests).
    "llamacpp_model_url": (
        "https://huggingface.co/Qwen/Qwen2.5-Coder-7B-Instruct-GGUF/resolve/main/"
        "qwen2.5-coder-7b-instruct-q4_k_m.gguf"
    ),
    "llamacpp_model_sha256": "",
    "llamacpp_model_name": "qwen2.5-coder:7b",
    # Model store; "" = /workspace/llamacpp/models when /workspace exists, else <home>/models.
    "llamacpp_models_dir": "",
    # Tokens per slot and slots (parallel requests); 0 = from the GPU profile that fits the
    # host's GPU memory (roles/ollama/profiles.py; the 12 GB one without a GPU).
    "llamacpp_context_length": 0,
    "llamacpp_parallel": 0,
    # Layers offloaded to the GPU (999 = all; 0 on a CPU-only host).
    "llamacpp_gpu_layers": 999,
    # More llama-server arguments, e.g. ["--override-kv", "llama.context_length=int:32768"].
    "llamacpp_extra_args": [],
    # Seconds to wait for /health (200 once the model is loaded) after a (re)start.
    "llamacpp_wait_timeout": 300,
}
