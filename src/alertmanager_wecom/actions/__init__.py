"""Acting on alerts from WeCom: alert cards, their buttons (acknowledge, silence), and what they remember."""
