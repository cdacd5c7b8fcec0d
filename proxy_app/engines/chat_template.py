"""The Go templates Ollama ships for qwen2.5 and qwen2.5-coder, recognised in /api/show.

proxy_app builds no prompt from them: a model whose /api/show template is one of these is a
qwen2.5-family model, whose prompt proxy_app renders in Qwen's published template
(proxy_app.families) and sends raw. What Ollama itself builds from them for /api/chat is
reproduced for the Ollama double (ollama_double/qwen_template.py). Template sources: Ollama's
library blobs 1e65450c3067 (qwen2.5-coder) and eb4402837c78 (qwen2/qwen2.5), as transcribed in
unslothai/unsloth unsloth/ollama_template_mappers.py.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class QwenTemplate:
    """One of the Qwen Go templates Ollama ships, which differ only in a few sentences."""

    name: str
    fim: bool
    tools_intro: str
    call_instruction: str

    def source(self) -> str:
        """The Go template text, as /api/show returns it (used to recognise the model's)."""
        fim = (
            "{{- if .Suffix }}<|fim_prefix|>{{ .Prompt }}<|fim_suffix|>{{ .Suffix }}"
            "<|fim_middle|>\n{{- else if .Messages }}"
            if self.fim
            else "{{- if .Messages }}"
        )
        return (
            _SOURCE.replace("@FIM@", fim)
            .replace("@INTRO@", self.tools_intro)
            .replace("@INSTRUCTION@", self.call_instruction)
        )


QWEN25_CODER = QwenTemplate(
    name="qwen2.5-coder",
    fim=True,
    tools_intro="You are provided with function signatures within <tools></tools>:",
    call_instruction=(
        "For each function call, return a json object with function name and arguments within "
        "<tool_call></tool_call> with NO other text. Do not include any backticks or ```json."
    ),
)
QWEN25 = QwenTemplate(
    name="qwen2.5",
    fim=False,
    tools_intro="You are provided with function signatures within <tools></tools> XML tags:",
    call_instruction=(
        "For each function call, return a json object with function name and arguments within "
        "<tool_call></tool_call> XML tags:"
    ),
)
TEMPLATES = (QWEN25_CODER, QWEN25)


def match_template(source: str) -> QwenTemplate | None:
    """The known template whose text this is (whitespace at the ends aside), or None."""
    wanted = source.strip()
    return next((t for t in TEMPLATES if t.source().strip() == wanted), None)


_SOURCE = """@FIM@
{{- if or .System .Tools }}<|im_start|>system
{{- if .System }}
{{ .System }}
{{- end }}
{{- if .Tools }}

# Tools

You may call one or more functions to assist with the user query.

@INTRO@
<tools>
{{- range .Tools }}
{"type": "function", "function": {{ .Function }}}
{{- end }}
</tools>

@INSTRUCTION@
<tool_call>
{"name": <function-name>, "arguments": <args-json-object>}
</tool_call>
{{- end }}<|im_end|>
{{ end }}
{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 -}}
{{- if eq .Role "user" }}<|im_start|>user
{{ .Content }}<|im_end|>
{{ else if eq .Role "assistant" }}<|im_start|>assistant
{{ if .Content }}{{ .Content }}
{{- else if .ToolCalls }}<tool_call>
{{ range .ToolCalls }}{"name": "{{ .Function.Name }}", "arguments": {{ .Function.Arguments }}}
{{ end }}</tool_call>
{{- end }}{{ if not $last }}<|im_end|>
{{ end }}
{{- else if eq .Role "tool" }}<|im_start|>user
<tool_response>
{{ .Content }}
</tool_response><|im_end|>
{{ end }}
{{- if and (ne .Role "assistant") $last }}<|im_start|>assistant
{{ end }}
{{- end }}
{{- else }}
{{- if .System }}<|im_start|>system
{{ .System }}<|im_end|>
{{ end }}{{ if .Prompt }}<|im_start|>user
{{ .Prompt }}<|im_end|>
{{ end }}<|im_start|>assistant
{{ end }}{{ .Response }}{{ if .Response }}<|im_end|>{{ end }}"""
