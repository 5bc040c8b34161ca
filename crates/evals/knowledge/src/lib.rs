//! Multiple-choice knowledge: each item is `{"question", "choices": [4 strings], "answer": 0..3}`.
//! The model is asked to answer with one letter; `accuracy` is 1 when the first letter A–D in
//! the reply is the right one, and `answered` is 1 when there was any such letter.

use proctor_guest::{dataset, model, scores, Eval, EvalInfo, Message, Metric, Params, SampleError};

const LETTERS: [char; 4] = ['A', 'B', 'C', 'D'];

#[derive(serde::Deserialize)]
struct Item {
    question: String,
    choices: Vec<String>,
    answer: usize,
}

struct Knowledge;

impl Eval for Knowledge {
    fn describe() -> EvalInfo {
        EvalInfo::new(
            "knowledge",
            "1.0.0",
            vec![
                Metric::new("accuracy", "the chosen letter is the right answer", 0.0, 1.0),
                Metric::new("answered", "the reply names one of the letters A-D", 0.0, 1.0),
            ],
        )
    }

    fn run_sample(index: u32) -> Result<(), SampleError> {
        let item: Item = dataset::item_json(index)?;
        if item.choices.len() != LETTERS.len() || item.answer >= LETTERS.len() {
            return Err(SampleError::InvalidItem);
        }
        let mut prompt = format!("{}\n", item.question);
        for (letter, choice) in LETTERS.iter().zip(&item.choices) {
            prompt.push_str(&format!("{letter}. {choice}\n"));
        }
        let messages = [
            Message::system("Answer with the letter of the correct choice only."),
            Message::user(prompt),
        ];
        let reply = model::complete(&messages, &Params::default().max_tokens(8).temperature(0.0))
            .map_err(|e| e.into_sample_error())?;
        let chosen = reply
            .text
            .split(|c: char| !c.is_ascii_alphanumeric())
            .find_map(|word| LETTERS.iter().position(|l| word.len() == 1 && word.starts_with(*l)));
        scores::report("answered", if chosen.is_some() { 1.0 } else { 0.0 });
        scores::report("accuracy", if chosen == Some(item.answer) { 1.0 } else { 0.0 });
        Ok(())
    }
}

proctor_guest::export_eval!(Knowledge);
