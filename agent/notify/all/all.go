// Package all links every receiver integration into the binary: importing
// it runs their init() registrations with agent/notify. Add a blank import
// here for a new integration.
package all

import (
	_ "github.com/vigil-project/vigil/agent/notify/aliyunsms"
	_ "github.com/vigil-project/vigil/agent/notify/aliyunvoice"
	_ "github.com/vigil-project/vigil/agent/notify/dingtalk"
	_ "github.com/vigil-project/vigil/agent/notify/email"
	_ "github.com/vigil-project/vigil/agent/notify/feishu"
	_ "github.com/vigil-project/vigil/agent/notify/pagerduty"
	_ "github.com/vigil-project/vigil/agent/notify/slack"
	_ "github.com/vigil-project/vigil/agent/notify/tencentsms"
	_ "github.com/vigil-project/vigil/agent/notify/webhook"
	_ "github.com/vigil-project/vigil/agent/notify/wecom"
)
