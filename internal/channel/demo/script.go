package demo

// Customer is a simulated person writing to the demo shop.
type Customer struct {
	Name   string
	Handle string
}

// customers mixes phone numbers (as WhatsApp and SMS show them) with
// social handles (as TikTok shows them), so the demo inbox looks like the
// real mix a team sees.
var customers = []Customer{
	{"Lena Schmidt", "+4915112345678"},
	{"Mateo García", "+34612345678"},
	{"Aisha Bello", "+2348031234567"},
	{"Kenji Watanabe", "@kenji.w"},
	{"Priya Raman", "+919812345678"},
	{"Olivia Brown", "+447700900123"},
	{"Lucas Martin", "+33612345678"},
	{"Fatima El Amrani", "+212612345678"},
	{"Noah Johnson", "+14155550123"},
	{"Sofia Rossi", "@sofia.rossi"},
	{"Chen Wei", "@chenwei_88"},
	{"Emre Yılmaz", "+905321234567"},
	{"Ana Souza", "+5511987654321"},
}

// topics are support conversations as the customer writes them: the first
// line opens the topic, the rest arrive on the customer's later turns.
// "{order}" is replaced by an order number that stays the same within a topic.
var topics = [][]string{
	{
		"Hi! I ordered on Monday and still haven't got a shipping confirmation. Order {order}.",
		"Any news on my order? I really need it before the weekend 🙏",
	},
	{
		"Hello, I'd like to return the sneakers I bought last week, they're too small. How does that work?",
		"Do I need to print the return label myself or can you email one?",
		"And how long does the refund usually take?",
	},
	{
		"Hey, do the linen shirts run small? I'm usually an M but sometimes between sizes.",
		"Ok and what about the chinos, same fit?",
	},
	{
		"Can I still change the delivery address for order {order}? I moved last week 😅",
		"The new address is Lindenstraße 12, 10969 Berlin.",
	},
	{
		"My card was charged twice for order {order}! Can you please check?",
		"I can send a screenshot of my bank statement if that helps.",
	},
	{
		"Checkout keeps failing with \"payment declined\" but my bank says everything is fine.",
		"Can I pay with PayPal instead?",
	},
	{
		"Is the Storm rain jacket fully waterproof or just water-resistant?",
		"Does it come in dark green as well?",
	},
	{
		"The ceramic mug arrived broken 😞 Order {order}.",
		"I have photos of the box and the mug, where should I send them?",
	},
	{
		"I got a blue hoodie but I ordered a black one. Order {order}.",
		"Can you send the right one, or do I have to return this one first?",
	},
	{
		"The code WELCOME10 doesn't work at checkout, it says it has expired?",
		"I only signed up for the newsletter yesterday.",
	},
	{
		"When will the white canvas sneakers in size 42 be back in stock?",
		"Could you let me know when they are?",
	},
	{
		"Tracking says delivered but there's nothing at my door. Order {order}.",
		"I asked the neighbours too, nobody has it.",
		"Hello? Is anyone there? This is really frustrating.",
	},
	{
		"Could you send me an invoice with my company name on it? Order {order}.",
		"Company: Brightside Studio GmbH, VAT ID DE123456789.",
	},
	{
		"I'd like to cancel order {order}, I picked the wrong colour by mistake.",
		"If it has already shipped I'll just return it, no worries.",
	},
	{
		"Do you offer gift wrapping? It's for my mum's birthday on Friday 🎁",
		"And can I add a little card with a message?",
	},
	{
		"Is express shipping to Austria possible? How much does it cost?",
	},
	{
		"Can I exchange the summer dress for one size larger instead of returning it?",
		"Perfect. Should I just send it back with a note inside?",
	},
	{
		"How should I wash the merino sweater? I really don't want to ruin it.",
	},
	{
		"I can't log into my account, the password reset email never arrives.",
		"I checked the spam folder too, nothing there.",
	},
	{
		"I bought the travel backpack 3 days ago and now it's 20% off. Can I get the difference back?",
	},
	{
		"Hola! Do you ship to Mexico? 🇲🇽",
		"And would I have to pay customs on arrival?",
	},
	{
		"The zip on my jacket broke after two weeks. Is that covered by the warranty? Order {order}.",
		"I bought it in your Hamburg store, not online, does that matter?",
	},
}

// replies are what a customer may answer after an agent wrote to them.
var replies = []string{
	"Thank you so much! 🙏",
	"Perfect, thanks for the quick answer.",
	"Ok great, I'll wait then.",
	"Hmm, that doesn't really solve my problem though.",
	"Got it 👍",
	"Thanks! Have a nice day.",
	"Alright, can you let me know once it's done?",
	"Super, danke!",
	"Ok, and how long will that take?",
	"Awesome, you're the best!",
	"That works for me.",
	"I'll try that and get back to you.",
}
