// Reference renderer: Ollama's template.Execute + collate + template types (template/template.go,
// api/types.go at v0.33.0-rc2), re-declared without dependencies, for checking proxy_app.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
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

type ToolCall struct {
	Function struct {
		Name      string         `json:"name"`
		Arguments map[string]any `json:"arguments"`
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
	// images: prefix tags as server/prompt.go does
	n := 0
	for i := range msgs {
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
	system, collated := collate(msgs)
	var tmsgs []*templateMessage
	for _, m := range collated {
		var calls []templateToolCall
		for _, c := range m.ToolCalls {
			calls = append(calls, templateToolCall{Function: templateToolCallFunction{Name: c.Function.Name, Arguments: templateArgs(c.Function.Arguments)}})
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
