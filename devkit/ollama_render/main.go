// Reference renderer: Ollama's template.Execute + collate + template types (template/template.go,
// api/types.go at v0.33.0-rc2), re-declared without dependencies, for checking proxy_app.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strings"
	"text/template"
)

type PropertyType []string

func (pt *PropertyType) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err == nil {
		*pt = []string{s}
		return nil
	}
	var a []string
	if err := json.Unmarshal(data, &a); err != nil {
		return err
	}
	*pt = a
	return nil
}

func (pt PropertyType) MarshalJSON() ([]byte, error) {
	if len(pt) == 1 {
		return json.Marshal(pt[0])
	}
	return json.Marshal([]string(pt))
}

type OrderedProps struct {
	keys []string
	vals map[string]ToolProperty
}

func (o *OrderedProps) UnmarshalJSON(data []byte) error {
	o.vals = map[string]ToolProperty{}
	dec := json.NewDecoder(bytes.NewReader(data))
	if _, err := dec.Token(); err != nil {
		return err
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return err
		}
		k := t.(string)
		var v ToolProperty
		if err := dec.Decode(&v); err != nil {
			return err
		}
		if _, ok := o.vals[k]; !ok {
			o.keys = append(o.keys, k)
		}
		o.vals[k] = v
	}
	return nil
}

func (o OrderedProps) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteString("{")
	for i, k := range o.keys {
		if i > 0 {
			b.WriteString(",")
		}
		kb, _ := json.Marshal(k)
		b.Write(kb)
		b.WriteString(":")
		vb, err := json.Marshal(o.vals[k])
		if err != nil {
			return nil, err
		}
		b.Write(vb)
	}
	b.WriteString("}")
	return b.Bytes(), nil
}

func (o *OrderedProps) ToMap() map[string]ToolProperty {
	if o == nil {
		return nil
	}
	m := map[string]ToolProperty{}
	for k, v := range o.vals {
		m[k] = v
	}
	return m
}

type ToolProperty struct {
	AnyOf       []ToolProperty `json:"anyOf,omitempty"`
	Type        PropertyType   `json:"type,omitempty"`
	Items       any            `json:"items,omitempty"`
	Description string         `json:"description,omitempty"`
	Enum        []any          `json:"enum,omitempty"`
	Properties  *OrderedProps  `json:"properties,omitempty"`
	Required    []string       `json:"required,omitempty"`
}

type ToolFunctionParameters struct {
	Type       string        `json:"type"`
	Defs       any           `json:"$defs,omitempty"`
	Items      any           `json:"items,omitempty"`
	Required   []string      `json:"required,omitempty"`
	Properties *OrderedProps `json:"properties"`
}

type ToolFunction struct {
	Name        string                 `json:"name"`
	Description string                 `json:"description,omitempty"`
	Parameters  ToolFunctionParameters `json:"parameters"`
}

type Tool struct {
	Type     string       `json:"type"`
	Items    any          `json:"items,omitempty"`
	Function ToolFunction `json:"function"`
}

// OrderedArgs keeps the arguments' key order, as api.ToolCallFunctionArguments does.
type OrderedArgs struct {
	keys []string
	vals map[string]any
}

func (o *OrderedArgs) UnmarshalJSON(data []byte) error {
	o.vals = map[string]any{}
	dec := json.NewDecoder(bytes.NewReader(data))
	if _, err := dec.Token(); err != nil {
		return err
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return err
		}
		k := t.(string)
		var v any
		if err := dec.Decode(&v); err != nil {
			return err
		}
		if _, ok := o.vals[k]; !ok {
			o.keys = append(o.keys, k)
		}
		o.vals[k] = v
	}
	return nil
}

type ToolCall struct {
	Function struct {
		Name      string      `json:"name"`
		Arguments OrderedArgs `json:"arguments"`
	} `json:"function"`
}

type Message struct {
	Role      string     `json:"role"`
	Content   string     `json:"content"`
	Images    []string   `json:"images,omitempty"`
	ToolCalls []ToolCall `json:"tool_calls,omitempty"`
	ToolName  string     `json:"tool_name,omitempty"`
}

type templateTools []templateTool

func (t templateTools) String() string { bts, _ := json.Marshal(t); return string(bts) }

type templateArgs map[string]any

func (t templateArgs) String() string {
	if t == nil {
		return "{}"
	}
	bts, _ := json.Marshal(t)
	return string(bts)
}

type templateProperties map[string]ToolProperty

func (t templateProperties) String() string {
	if t == nil {
		return "{}"
	}
	bts, _ := json.Marshal(t)
	return string(bts)
}

func (t templateTool) String() string { bts, _ := json.Marshal(t); return string(bts) }

type templateTool struct {
	Type     string               `json:"type"`
	Items    any                  `json:"items,omitempty"`
	Function templateToolFunction `json:"function"`
}

type templateToolFunction struct {
	Name        string                         `json:"name"`
	Description string                         `json:"description"`
	Parameters  templateToolFunctionParameters `json:"parameters"`
}

type templateToolFunctionParameters struct {
	Type       string             `json:"type"`
	Defs       any                `json:"$defs,omitempty"`
	Items      any                `json:"items,omitempty"`
	Required   []string           `json:"required,omitempty"`
	Properties templateProperties `json:"properties"`
}

type templateToolCall struct {
	ID       string
	Function templateToolCallFunction
}

type templateToolCallFunction struct {
	Index     int
	Name      string
	Arguments templateArgs
}

type templateMessage struct {
	Role      string
	Content   string
	ToolCalls []templateToolCall
	ToolName  string
}

func collate(msgs []Message) (string, []*Message) {
	var system []string
	var collated []*Message
	for i := range msgs {
		if msgs[i].Role == "system" {
			system = append(system, msgs[i].Content)
		}
		if len(collated) > 0 && collated[len(collated)-1].Role == msgs[i].Role && msgs[i].Role != "tool" {
			collated[len(collated)-1].Content += "\n\n" + msgs[i].Content
		} else {
			collated = append(collated, &msgs[i])
		}
	}
	return strings.Join(system, "\n\n"), collated
}

func main() {
	src, _ := os.ReadFile(os.Args[1])
	body, _ := os.ReadFile(os.Args[2])
	defaultSystem := ""
	if len(os.Args) > 3 {
		defaultSystem = os.Args[3]
	}
	var req struct {
		Messages []Message `json:"messages"`
		Tools    []Tool    `json:"tools"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		panic(err)
	}
	msgs := req.Messages
	if len(msgs) > 0 && msgs[0].Role != "system" && defaultSystem != "" {
		msgs = append([]Message{{Role: "system", Content: defaultSystem}}, msgs...)
	}
	// images: prefix tags as server/prompt.go does (not for built-in renderers)
	n := 0
	for i := range msgs {
		if strings.HasPrefix(string(src), "renderer:") {
			break
		}
		prefix := ""
		for range msgs[i].Images {
			tag := fmt.Sprintf("[img-%d]", n)
			n++
			if !strings.Contains(msgs[i].Content, "[img]") {
				prefix += tag
			} else {
				msgs[i].Content = strings.Replace(msgs[i].Content, "[img]", tag, 1)
			}
		}
		msgs[i].Content = prefix + msgs[i].Content
	}
	if string(src) == "renderer:qwen3-coder\n" || string(src) == "renderer:qwen3-coder" {
		out, err := renderQwen3Coder(msgs, req.Tools)
		if err != nil {
			panic(err)
		}
		fmt.Print(out)
		return
	}
	system, collated := collate(msgs)
	var tmsgs []*templateMessage
	for _, m := range collated {
		var calls []templateToolCall
		for _, c := range m.ToolCalls {
			calls = append(calls, templateToolCall{Function: templateToolCallFunction{Name: c.Function.Name, Arguments: templateArgs(c.Function.Arguments.vals)}})
		}
		tmsgs = append(tmsgs, &templateMessage{Role: m.Role, Content: m.Content, ToolCalls: calls, ToolName: m.ToolName})
	}
	var tools templateTools
	if req.Tools != nil {
		tools = make(templateTools, len(req.Tools))
		for i, t := range req.Tools {
			tools[i] = templateTool{Type: t.Type, Items: t.Items, Function: templateToolFunction{
				Name: t.Function.Name, Description: t.Function.Description,
				Parameters: templateToolFunctionParameters{Type: t.Function.Parameters.Type, Defs: t.Function.Parameters.Defs,
					Items: t.Function.Parameters.Items, Required: t.Function.Parameters.Required,
					Properties: templateProperties(t.Function.Parameters.Properties.ToMap())}}}
		}
	}
	_ = sort.Strings
	tmpl := template.Must(template.New("").Option("missingkey=zero").Parse(string(src)))
	err := tmpl.Execute(os.Stdout, map[string]any{
		"System": system, "Messages": tmsgs, "Tools": tools, "Response": "", "Think": false,
	})
	if err != nil {
		panic(err)
	}
}

// ---- model/renderers/qwen3coder.go, on the types above

func renderAdditionalKeys(obj any, handledKeys map[string]bool) string {
	data, err := json.Marshal(obj)
	if err != nil {
		return ""
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		return ""
	}
	var sb strings.Builder
	for key, value := range m {
		if handledKeys[key] {
			continue
		}
		switch v := value.(type) {
		case map[string]any, []any:
			jsonBytes, _ := json.Marshal(v)
			sb.WriteString("\n<" + key + ">" + string(jsonBytes) + "</" + key + ">")
		case nil:
			continue
		default:
			sb.WriteString("\n<" + key + ">" + fmt.Sprintf("%v", value) + "</" + key + ">")
		}
	}
	return sb.String()
}

func formatToolCallArgument(value any) string {
	if value == nil {
		return "null"
	}
	switch v := value.(type) {
	case string:
		return v
	case []byte:
		return string(v)
	}
	if reflect.TypeOf(value) != nil {
		kind := reflect.TypeOf(value).Kind()
		if kind == reflect.Map || kind == reflect.Slice || kind == reflect.Array {
			if marshalled, err := json.Marshal(value); err == nil {
				return string(marshalled)
			}
		}
	}
	return fmt.Sprintf("%v", value)
}

func formatToolDefinitionType(tp PropertyType) string {
	if len(tp) == 0 {
		return "[]"
	}
	if len(tp) == 1 {
		return tp[0]
	}
	jsonBytes, err := json.Marshal(tp)
	if err != nil {
		return "[]"
	}
	return string(jsonBytes)
}

func renderQwen3Coder(messages []Message, tools []Tool) (string, error) {
	imStartTag, imEndTag := "<|im_start|>", "<|im_end|>"
	var sb strings.Builder
	var systemMessage string
	var filteredMessages []Message
	for _, message := range messages {
		if message.Role != "system" {
			filteredMessages = append(filteredMessages, message)
			continue
		}
		if systemMessage == "" {
			systemMessage = message.Content
		}
	}
	if systemMessage != "" || len(tools) > 0 {
		sb.WriteString(imStartTag + "system\n")
		if systemMessage == "" {
			systemMessage = "You are Qwen, a helpful AI assistant that can interact with a computer to solve tasks."
		}
		sb.WriteString(systemMessage)
		if len(tools) > 0 {
			sb.WriteString("\n\n# Tools\n\nYou have access to the following functions:\n\n")
			sb.WriteString("<tools>")
			for _, tool := range tools {
				sb.WriteString("\n")
				sb.WriteString("<function>\n")
				sb.WriteString("<name>" + tool.Function.Name + "</name>")
				if tool.Function.Description != "" {
					sb.WriteString("\n<description>" + tool.Function.Description + "</description>")
				}
				sb.WriteString("\n<parameters>")
				if props := tool.Function.Parameters.Properties; props != nil {
					for _, name := range props.keys {
						prop := props.vals[name]
						sb.WriteString("\n<parameter>")
						sb.WriteString("\n<name>" + name + "</name>")
						if len(prop.Type) > 0 {
							sb.WriteString("\n<type>" + formatToolDefinitionType(prop.Type) + "</type>")
						}
						if prop.Description != "" {
							sb.WriteString("\n<description>" + prop.Description + "</description>")
						}
						sb.WriteString(renderAdditionalKeys(prop, map[string]bool{"type": true, "description": true}))
						sb.WriteString("\n</parameter>")
					}
				}
				sb.WriteString(renderAdditionalKeys(tool.Function.Parameters, map[string]bool{"type": true, "properties": true}))
				sb.WriteString("\n</parameters>")
				sb.WriteString("\n</function>")
			}
			sb.WriteString("\n</tools>")
			sb.WriteString("\n\nIf you choose to call a function ONLY reply in the following format with NO suffix:\n\n<tool_call>\n<function=example_function_name>\n<parameter=example_parameter_1>\nvalue_1\n</parameter>\n<parameter=example_parameter_2>\nThis is the value for the second parameter\nthat can span\nmultiple lines\n</parameter>\n</function>\n</tool_call>\n\n<IMPORTANT>\nReminder:\n- Function calls MUST follow the specified format: an inner <function=...></function> block must be nested within <tool_call></tool_call> XML tags\n- Required parameters MUST be specified\n- You may provide optional reasoning for your function call in natural language BEFORE the function call, but NOT after\n- If there is no function call available, answer the question like normal with your current knowledge and do not tell the user about function calls\n</IMPORTANT>")
		}
		sb.WriteString(imEndTag + "\n")
	}
	for i, message := range filteredMessages {
		lastMessage := i == len(filteredMessages)-1
		prefill := lastMessage && message.Role == "assistant"
		switch message.Role {
		case "assistant":
			if len(message.ToolCalls) > 0 {
				sb.WriteString(imStartTag + "assistant\n")
				if message.Content != "" {
					sb.WriteString(message.Content + "\n")
				}
				for _, toolCall := range message.ToolCalls {
					sb.WriteString("\n<tool_call>\n<function=" + toolCall.Function.Name + ">")
					args := toolCall.Function.Arguments
					for _, name := range args.keys {
						valueStr := formatToolCallArgument(args.vals[name])
						sb.WriteString("\n<parameter=" + name + ">\n" + valueStr + "\n</parameter>")
					}
					sb.WriteString("\n</function>\n</tool_call>")
				}
				sb.WriteString("<|im_end|>\n")
			} else {
				sb.WriteString(imStartTag + "assistant\n")
				sb.WriteString(message.Content)
				if !prefill {
					sb.WriteString(imEndTag + "\n")
				}
			}
		case "tool":
			if i == 0 || filteredMessages[i-1].Role != "tool" {
				sb.WriteString(imStartTag + "user")
			}
			sb.WriteString("\n<tool_response>\n")
			sb.WriteString(message.Content)
			sb.WriteString("\n</tool_response>")
			if i == len(filteredMessages)-1 || filteredMessages[i+1].Role != "tool" {
				sb.WriteString(imEndTag + "\n")
			}
		default:
			sb.WriteString(imStartTag + message.Role + "\n")
			sb.WriteString(message.Content)
			sb.WriteString(imEndTag + "\n")
		}
		if lastMessage && !prefill {
			sb.WriteString(imStartTag + "assistant\n")
		}
	}
	return sb.String(), nil
}
