pub mod llm {}
