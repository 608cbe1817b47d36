// Rendering of a Jinja chat template (ChatTemplateKind::kJinja): the request becomes the
// variables transformers and vLLM give the template (engine/text/chat_template.h lists them).
#pragma once

#include <vector>

#include "common/status.h"
#include "engine/text/chat_template.h"
#include "engine/text/rendered_prompt.h"

namespace longview::internal {

// REQUIRES: tmpl.kind == kJinja and tmpl.jinja is set.
absl::StatusOr<RenderedPrompt> RenderJinjaChat(const ChatTemplate& tmpl,
                                               const std::vector<ChatMessage>& messages,
                                               const ChatRenderOptions& options);

}  // namespace longview::internal
