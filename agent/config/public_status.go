package config

import (
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// PublicStatus is the text of the public status page (/status): its
// title and a short description under it, in English and optionally in
// Chinese. Empty fields show the page's default ("Service status", no
// description).
type PublicStatus struct {
	Title         string `yaml:"title" json:"title,omitempty"`
	TitleZH       string `yaml:"title_zh" json:"title_zh,omitempty"`
	Description   string `yaml:"description" json:"description,omitempty"`
	DescriptionZH string `yaml:"description_zh" json:"description_zh,omitempty"`
}

// Text is the title and description for lang ("zh" or "en"): the Chinese
// ones when set, else the English ones.
func (p PublicStatus) Text(lang string) (title, description string) {
	title, description = p.Title, p.Description
	if lang == "zh" {
		if p.TitleZH != "" {
			title = p.TitleZH
		}
		if p.DescriptionZH != "" {
			description = p.DescriptionZH
		}
	}
	return title, description
}

// Bounds of the public page's text: a title fits a heading on a phone, a
// description a short paragraph.
const (
	maxPublicTitle       = 80
	maxPublicDescription = 300
)

func (d *decoder) validatePublicStatus(root *yaml.Node, p *PublicStatus) {
	n := lookupValue(root, "public_status")
	at := func(key string) *yaml.Node {
		if n != nil {
			if k := lookupPath(n, key); k != nil {
				return k
			}
			return n
		}
		return root
	}
	for key, v := range map[string]string{"title": p.Title, "title_zh": p.TitleZH} {
		if utf8.RuneCountInString(v) > maxPublicTitle || strings.ContainsAny(v, "\r\n") {
			d.errorf(at(key), "public_status."+key, "must be one line of at most %d characters", maxPublicTitle)
		}
	}
	for key, v := range map[string]string{"description": p.Description, "description_zh": p.DescriptionZH} {
		if utf8.RuneCountInString(v) > maxPublicDescription {
			d.errorf(at(key), "public_status."+key, "must be at most %d characters", maxPublicDescription)
		}
	}
}
